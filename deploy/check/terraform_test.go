package check

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// tfModule is the root module under ../terraform, parsed without a provider
// schema: the tests check its syntax, that every reference resolves, and the
// attributes the seed design fixes.
type tfModule struct {
	resources map[string]*hclsyntax.Block // "type.name"
	data      map[string]*hclsyntax.Block // "type.name"
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	terraform []*hclsyntax.Block
	providers map[string]*hclsyntax.Block
	ctx       *hcl.EvalContext // var.* = defaults; resources, data and function results unknown
}

var tfBlockLabels = map[string]int{
	"terraform": 0, "locals": 0, "provider": 1, "variable": 1, "output": 1, "resource": 2, "data": 2,
}

func loadTerraform(t *testing.T) *tfModule {
	t.Helper()
	files, err := filepath.Glob(deployPath("terraform", "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in ../terraform (%v)", err)
	}
	m := &tfModule{
		resources: map[string]*hclsyntax.Block{}, data: map[string]*hclsyntax.Block{},
		variables: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{},
		locals: map[string]*hclsyntax.Attribute{}, providers: map[string]*hclsyntax.Block{},
	}
	p := hclparse.NewParser()
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		body := file.Body.(*hclsyntax.Body)
		if len(body.Attributes) > 0 {
			t.Errorf("%s: top-level attributes are not Terraform", f)
		}
		for _, b := range body.Blocks {
			n, ok := tfBlockLabels[b.Type]
			if !ok {
				t.Errorf("%s:%d: unexpected block %q", f, b.TypeRange.Start.Line, b.Type)
				continue
			}
			if len(b.Labels) != n {
				t.Errorf("%s:%d: %s block with labels %q, want %d", f, b.TypeRange.Start.Line, b.Type, b.Labels, n)
				continue
			}
			dup := func(kind, key string, seen bool) {
				if seen {
					t.Errorf("%s:%d: %s %s declared twice", f, b.TypeRange.Start.Line, kind, key)
				}
			}
			switch b.Type {
			case "terraform":
				m.terraform = append(m.terraform, b)
			case "provider":
				m.providers[b.Labels[0]] = b
			case "variable":
				_, seen := m.variables[b.Labels[0]]
				dup("variable", b.Labels[0], seen)
				m.variables[b.Labels[0]] = b
			case "output":
				_, seen := m.outputs[b.Labels[0]]
				dup("output", b.Labels[0], seen)
				m.outputs[b.Labels[0]] = b
			case "resource":
				key := b.Labels[0] + "." + b.Labels[1]
				_, seen := m.resources[key]
				dup("resource", key, seen)
				m.resources[key] = b
			case "data":
				key := b.Labels[0] + "." + b.Labels[1]
				_, seen := m.data[key]
				dup("data source", key, seen)
				m.data[key] = b
			case "locals":
				for name, a := range b.Body.Attributes {
					_, seen := m.locals[name]
					dup("local", name, seen)
					m.locals[name] = a
				}
			}
		}
	}
	m.ctx = m.evalContext(t)
	return m
}

// evalContext evaluates what can be known without a provider: variables take
// their defaults, locals are evaluated from them, everything else is unknown.
func (m *tfModule) evalContext(t *testing.T) *hcl.EvalContext {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: map[string]function.Function{}}
	vars := map[string]cty.Value{}
	for name, b := range m.variables {
		vars[name] = cty.DynamicVal
		if a, ok := b.Body.Attributes["default"]; ok {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() {
				vars[name] = v
			}
		}
	}
	ctx.Variables["var"] = cty.ObjectVal(vars)
	unknowns := func(kind map[string]*hclsyntax.Block) map[string]cty.Value {
		byType := map[string]map[string]cty.Value{}
		for key := range kind {
			typ, name, _ := strings.Cut(key, ".")
			if byType[typ] == nil {
				byType[typ] = map[string]cty.Value{}
			}
			byType[typ][name] = cty.DynamicVal
		}
		objs := map[string]cty.Value{}
		for typ, names := range byType {
			objs[typ] = cty.ObjectVal(names)
		}
		return objs
	}
	maps.Copy(ctx.Variables, unknowns(m.resources))
	if d := unknowns(m.data); len(d) > 0 {
		ctx.Variables["data"] = cty.ObjectVal(d)
	}
	// Every function called anywhere returns an unknown value: the tests
	// assert literals and what variables' defaults make of them.
	unknownFunc := function.New(&function.Spec{
		VarParam: &function.Parameter{Name: "args", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowNull: true, AllowDynamicType: true},
		Type:     function.StaticReturnType(cty.DynamicPseudoType),
		Impl:     func([]cty.Value, cty.Type) (cty.Value, error) { return cty.DynamicVal, nil },
	})
	m.walk(func(_ string, _ *hclsyntax.Block, e hclsyntax.Expression) {
		_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
				ctx.Functions[call.Name] = unknownFunc
			}
			return nil
		})
	})
	// Locals may refer to each other: evaluate until nothing changes.
	locals := map[string]cty.Value{}
	for name := range m.locals {
		locals[name] = cty.DynamicVal
	}
	for range len(m.locals) + 1 {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		for name, a := range m.locals {
			if v, diags := a.Expr.Value(ctx); !diags.HasErrors() {
				locals[name] = v
			}
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return ctx
}

// walk calls fn for every expression of every top-level block, with the
// block's address, the top-level block and the expression. ignore_changes
// lists attribute names, not references, and is skipped.
func (m *tfModule) walk(fn func(addr string, top *hclsyntax.Block, e hclsyntax.Expression)) {
	var visit func(addr string, top *hclsyntax.Block, body *hclsyntax.Body)
	visit = func(addr string, top *hclsyntax.Block, body *hclsyntax.Body) {
		for name, a := range body.Attributes {
			if name == "ignore_changes" || name == "type" && top.Type == "variable" && body == top.Body {
				continue // attribute names and type constraints, not references
			}
			fn(addr, top, a.Expr)
		}
		for _, b := range body.Blocks {
			visit(addr, top, b.Body)
		}
	}
	for key, b := range m.resources {
		visit("resource "+key, b, b.Body)
	}
	for key, b := range m.data {
		visit("data "+key, b, b.Body)
	}
	for key, b := range m.outputs {
		visit("output "+key, b, b.Body)
	}
	for key, b := range m.variables {
		visit("variable "+key, b, b.Body)
	}
	for key, b := range m.providers {
		visit("provider "+key, b, b.Body)
	}
	for key, a := range m.locals {
		fn("local "+key, nil, a.Expr)
	}
}

// address is the object a traversal refers to: "var.x", "local.x",
// "data.t.n", "t.n", or its root name.
func address(tr hcl.Traversal) string {
	parts := []string{tr.RootName()}
	for _, step := range tr[1:] {
		a, ok := step.(hcl.TraverseAttr)
		if !ok {
			break
		}
		parts = append(parts, a.Name)
		if len(parts) == 2 && parts[0] != "data" || len(parts) == 3 {
			break
		}
	}
	return strings.Join(parts, ".")
}

func references(e hcl.Expression) []string {
	var out []string
	for _, tr := range e.Variables() {
		out = append(out, address(tr))
	}
	return out
}

func (m *tfModule) resource(t *testing.T, key string) *hclsyntax.Block {
	t.Helper()
	b, ok := m.resources[key]
	if !ok {
		t.Fatalf("no resource %s", key)
	}
	return b
}

// value evaluates an attribute of a body; unknown when absent or not known
// before apply.
func (m *tfModule) value(body *hclsyntax.Body, name string) cty.Value {
	a, ok := body.Attributes[name]
	if !ok {
		return cty.NilVal
	}
	v, diags := a.Expr.Value(m.ctx)
	if diags.HasErrors() {
		return cty.DynamicVal
	}
	return v
}

func blocks(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

func block(t *testing.T, body *hclsyntax.Body, path ...string) *hclsyntax.Body {
	t.Helper()
	for _, typ := range path {
		bs := blocks(body, typ)
		if len(bs) != 1 {
			t.Fatalf("want one %s block (path %v), found %d", typ, path, len(bs))
		}
		body = bs[0].Body
	}
	return body
}

// wantValue asserts an attribute's value, given as a Go string, number or bool.
func (m *tfModule) wantValue(t *testing.T, what string, body *hclsyntax.Body, name string, want any) {
	t.Helper()
	v := m.value(body, name)
	if v == cty.NilVal {
		t.Errorf("%s: no %s", what, name)
		return
	}
	if !v.IsWhollyKnown() || v.IsNull() {
		t.Errorf("%s: %s is not known before apply, want %v", what, name, want)
		return
	}
	var got any
	switch v.Type() {
	case cty.String:
		got = v.AsString()
	case cty.Bool:
		got = v.True()
	case cty.Number:
		f, _ := v.AsBigFloat().Float64()
		got = f
		if w, ok := want.(int); ok {
			want = float64(w)
		}
	default:
		got = v.GoString()
	}
	if got != want {
		t.Errorf("%s: %s = %v, want %v", what, name, got, want)
	}
}

func (m *tfModule) wantRef(t *testing.T, what string, body *hclsyntax.Body, name, target string) {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		t.Errorf("%s: no %s", what, name)
		return
	}
	if !slices.Contains(references(a.Expr), target) {
		t.Errorf("%s: %s refers to %v, want %s", what, name, references(a.Expr), target)
	}
}

// With no terraform binary at hand, `go test -run TestTerraformParsesAndIsFormatted -tffmt`
// formats the files in place instead of failing.
var tffmt = flag.Bool("tffmt", false, "format ../terraform/*.tf in place (hclwrite.Format, as terraform fmt)")

func TestTerraformParsesAndIsFormatted(t *testing.T) {
	files, _ := filepath.Glob(deployPath("terraform", "*.tf"))
	for _, f := range files {
		src := readFile(t, f)
		formatted := hclwrite.Format(src)
		if bytes.Equal(formatted, src) {
			continue
		}
		if *tffmt {
			if err := os.WriteFile(f, formatted, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s is not formatted as `terraform fmt` would (hclwrite.Format); run go test -tffmt", f)
	}
	loadTerraform(t)
}

func TestTerraformReferencesResolve(t *testing.T) {
	m := loadTerraform(t)
	used := map[string]bool{}
	m.walk(func(addr string, top *hclsyntax.Block, e hclsyntax.Expression) {
		for _, tr := range e.Variables() {
			ref := address(tr)
			root := tr.RootName()
			var ok bool
			switch root {
			case "var":
				_, ok = m.variables[strings.TrimPrefix(ref, "var.")]
				used[strings.TrimPrefix(ref, "var.")] = true
			case "local":
				_, ok = m.locals[strings.TrimPrefix(ref, "local.")]
			case "data":
				_, ok = m.data[strings.TrimPrefix(ref, "data.")]
			case "count", "each":
				attr := map[string]string{"count": "count", "each": "for_each"}[root]
				if top != nil {
					_, ok = top.Body.Attributes[attr]
				}
			case "self", "path", "terraform":
				ok = true
			default:
				_, ok = m.resources[ref]
			}
			if !ok {
				t.Errorf("%s: reference %s (%s) resolves to nothing", addr, ref, tr.SourceRange())
			}
		}
	})
	for name := range m.variables {
		if !used[name] {
			t.Errorf("variable %s is declared but never used", name)
		}
	}
}

func TestTerraformVersions(t *testing.T) {
	m := loadTerraform(t)
	if len(m.terraform) != 1 {
		t.Fatalf("%d terraform blocks, want 1", len(m.terraform))
	}
	rp := block(t, m.terraform[0].Body, "required_providers")
	aws := m.value(rp, "aws")
	if aws == cty.NilVal || !aws.Type().IsObjectType() {
		t.Fatal("required_providers has no aws = { source, version }")
	}
	if s := aws.GetAttr("source").AsString(); s != "hashicorp/aws" {
		t.Errorf("aws source %s", s)
	}
	if v := aws.GetAttr("version").AsString(); v != "~> 5.0" {
		t.Errorf("aws version constraint %q, want ~> 5.0", v)
	}
	if _, ok := m.providers["aws"]; !ok {
		t.Error("no provider \"aws\" block")
	}
}

func TestTerraformSeedResources(t *testing.T) {
	m := loadTerraform(t)

	// aws_ecs_cluster.tracktrace_cluster, as the seed has it.
	cl := m.resource(t, "aws_ecs_cluster.tracktrace_cluster").Body
	m.wantValue(t, "ecs cluster", cl, "name", "corporate-services-tracktrace")
	var insights bool
	for _, s := range blocks(cl, "setting") {
		if m.value(s.Body, "name").AsString() == "containerInsights" && m.value(s.Body, "value").AsString() == "enabled" {
			insights = true
		}
	}
	if !insights {
		t.Error("ecs cluster: containerInsights is not enabled")
	}

	// aws_ecs_service.tracktrace_api: blue/green through CodeDeploy.
	svc := m.resource(t, "aws_ecs_service.tracktrace_api").Body
	m.wantValue(t, "ecs service", svc, "name", "tracktrace-api")
	m.wantRef(t, "ecs service", svc, "cluster", "aws_ecs_cluster.tracktrace_cluster")
	m.wantRef(t, "ecs service", svc, "task_definition", "aws_ecs_task_definition.tracktrace_api")
	m.wantValue(t, "ecs service", svc, "desired_count", 3)
	m.wantValue(t, "ecs service", svc, "deployment_maximum_percent", 200)
	m.wantValue(t, "ecs service", svc, "deployment_minimum_healthy_percent", 100)
	if len(blocks(svc, "deployment_configuration")) > 0 {
		t.Error("ecs service: provider v5 has no deployment_configuration block; use the top-level percent arguments")
	}
	m.wantValue(t, "ecs service", block(t, svc, "deployment_controller"), "type", "CODE_DEPLOY")
	lb := block(t, svc, "load_balancer")
	m.wantRef(t, "ecs service load_balancer", lb, "target_group_arn", "aws_lb_target_group.tracktrace_api")
	m.wantValue(t, "ecs service load_balancer", lb, "container_name", "tracktrace-api")
	m.wantValue(t, "ecs service load_balancer", lb, "container_port", 8080)

	// The task definition: Fargate, the container the service names.
	td := m.resource(t, "aws_ecs_task_definition.tracktrace_api").Body
	compat := m.value(td, "requires_compatibilities")
	if !compat.IsWhollyKnown() || !slices.Contains(stringList(compat), "FARGATE") {
		t.Errorf("task definition: requires_compatibilities = %#v, want FARGATE", compat)
	}
	m.wantValue(t, "task definition", td, "network_mode", "awsvpc")
	m.wantRef(t, "task definition", td, "execution_role_arn", "aws_iam_role.task_execution")
	m.checkContainerDefinitions(t, td)

	// aws_rds_cluster.eventstore, as the seed has it, plus an instance.
	db := m.resource(t, "aws_rds_cluster.eventstore").Body
	m.wantValue(t, "rds cluster", db, "cluster_identifier", "tracktrace-eventstore")
	m.wantValue(t, "rds cluster", db, "engine", "aurora-postgresql")
	m.wantValue(t, "rds cluster", db, "database_name", "eventstore")
	m.wantValue(t, "rds cluster", db, "master_username", "eventstore_user")
	m.wantValue(t, "rds cluster", db, "backup_retention_period", 7)
	m.wantValue(t, "rds cluster", db, "preferred_backup_window", "03:00-04:00")
	m.wantValue(t, "rds cluster", db, "storage_encrypted", true)
	m.wantRef(t, "rds cluster", db, "kms_key_id", "aws_kms_key.eventstore")
	if azs := m.value(db, "availability_zones"); !azs.IsWhollyKnown() || len(stringList(azs)) < 3 {
		t.Errorf("rds cluster: availability_zones = %#v, want three AZs", azs)
	}
	if _, managed := db.Attributes["manage_master_user_password"]; managed {
		m.wantValue(t, "rds cluster", db, "manage_master_user_password", true)
	} else {
		m.wantRef(t, "rds cluster", db, "master_password", "var.db_password")
	}
	var instance bool
	for key, r := range m.resources {
		if strings.HasPrefix(key, "aws_rds_cluster_instance.") {
			m.wantRef(t, key, r.Body, "cluster_identifier", "aws_rds_cluster.eventstore")
			instance = true
		}
	}
	if !instance {
		t.Error("no aws_rds_cluster_instance in the event store cluster")
	}

	// Kafka: TLS in transit, encrypted at rest.
	msk := m.resourceOfType(t, "aws_msk_cluster").Body
	enc := block(t, msk, "encryption_info")
	m.wantRef(t, "msk", enc, "encryption_at_rest_kms_key_arn", "aws_kms_key.platform")
	transit := block(t, enc, "encryption_in_transit")
	m.wantValue(t, "msk", transit, "client_broker", "TLS")
	m.wantValue(t, "msk", transit, "in_cluster", true)

	// Redis: transit and at-rest encryption, AUTH token from a sensitive variable.
	redis := m.resourceOfType(t, "aws_elasticache_replication_group").Body
	m.wantValue(t, "redis", redis, "at_rest_encryption_enabled", true)
	m.wantValue(t, "redis", redis, "transit_encryption_enabled", true)
	m.wantRef(t, "redis", redis, "auth_token", "var.redis_auth_token")

	// Load balancer, blue and green target groups, listeners, CodeDeploy.
	m.resourceOfType(t, "aws_lb")
	for _, tg := range []string{"aws_lb_target_group.tracktrace_api", "aws_lb_target_group.tracktrace_api_green"} {
		b := m.resource(t, tg).Body
		m.wantValue(t, tg, b, "port", 8080)
		m.wantValue(t, tg, b, "target_type", "ip")
		m.wantValue(t, tg, block(t, b, "health_check"), "path", "/health/ready")
	}
	m.resourceOfType(t, "aws_lb_listener")
	app := m.resourceOfType(t, "aws_codedeploy_app").Body
	m.wantValue(t, "codedeploy app", app, "compute_platform", "ECS")
	dg := m.resourceOfType(t, "aws_codedeploy_deployment_group").Body
	m.wantValue(t, "codedeploy group", block(t, dg, "deployment_style"), "deployment_type", "BLUE_GREEN")
	m.wantRef(t, "codedeploy group", block(t, dg, "ecs_service"), "service_name", "aws_ecs_service.tracktrace_api")
	var tgs []string
	for _, b := range blocks(block(t, dg, "load_balancer_info", "target_group_pair_info"), "target_group") {
		tgs = append(tgs, references(b.Body.Attributes["name"].Expr)...)
	}
	sort.Strings(tgs)
	if want := []string{"aws_lb_target_group.tracktrace_api", "aws_lb_target_group.tracktrace_api_green"}; !slices.Equal(tgs, want) {
		t.Errorf("codedeploy target groups %v, want %v", tgs, want)
	}

	// The rest of the estate.
	for _, typ := range []string{"aws_security_group", "aws_iam_role", "aws_cloudwatch_log_group", "aws_kms_key", "aws_secretsmanager_secret"} {
		m.resourceOfType(t, typ)
	}
	if _, ok := m.resources["aws_kms_key.eventstore"]; !ok {
		t.Error("no aws_kms_key.eventstore (the seed's kms_key_id)")
	}
}

func (m *tfModule) resourceOfType(t *testing.T, typ string) *hclsyntax.Block {
	t.Helper()
	var found *hclsyntax.Block
	for key, b := range m.resources {
		if strings.HasPrefix(key, typ+".") {
			found = b
		}
	}
	if found == nil {
		t.Fatalf("no %s resource", typ)
	}
	return found
}

func stringList(v cty.Value) []string {
	var out []string
	if v.IsNull() || !v.IsKnown() || !v.CanIterateElements() {
		return nil
	}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out = append(out, e.AsString())
		}
	}
	return out
}

// container evaluates the argument of container_definitions = jsonencode([...])
// and returns its only container and the call.
func (m *tfModule) container(t *testing.T, td *hclsyntax.Body) (cty.Value, *hclsyntax.FunctionCallExpr) {
	t.Helper()
	a, ok := td.Attributes["container_definitions"]
	if !ok {
		t.Fatal("task definition: no container_definitions")
	}
	call, ok := a.Expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "jsonencode" || len(call.Args) != 1 {
		t.Fatal("task definition: container_definitions is not jsonencode([...])")
	}
	defs, diags := call.Args[0].Value(m.ctx)
	if diags.HasErrors() {
		t.Fatalf("container definitions: %s", diags.Error())
	}
	if !defs.CanIterateElements() || defs.LengthInt() != 1 {
		t.Fatalf("want one container definition, got %#v", defs)
	}
	return defs.Index(cty.NumberIntVal(0)), call
}

// ecsEnvironment returns the names of the container's environment variables
// and secrets.
func (m *tfModule) ecsEnvironment(t *testing.T) []string {
	t.Helper()
	c, _ := m.container(t, m.resource(t, "aws_ecs_task_definition.tracktrace_api").Body)
	var names []string
	for _, list := range []string{"environment", "secrets"} {
		for it := c.GetAttr(list).ElementIterator(); it.Next(); {
			_, e := it.Element()
			names = append(names, e.GetAttr("name").AsString())
		}
	}
	return names
}

// checkContainerDefinitions evaluates the argument of
// container_definitions = jsonencode([...]) and checks the container.
func (m *tfModule) checkContainerDefinitions(t *testing.T, td *hclsyntax.Body) {
	t.Helper()
	c, call := m.container(t, td)

	str := func(v cty.Value) string {
		if v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
			return v.AsString()
		}
		return "(unknown)"
	}
	if n := str(c.GetAttr("name")); n != "tracktrace-api" {
		t.Errorf("container name %s, want tracktrace-api (the service's load_balancer.container_name)", n)
	}
	if u := str(c.GetAttr("user")); u == "(unknown)" || u == "0" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0:") {
		t.Errorf("container user %s, want a numeric non-root user", u)
	}
	hc := stringList(c.GetAttr("healthCheck").GetAttr("command"))
	if want := []string{"CMD", "/tracktrace", "healthcheck"}; !slices.Equal(hc, want) {
		t.Errorf("healthCheck.command = %q, want %q", hc, want)
	}
	var port bool
	for it := c.GetAttr("portMappings").ElementIterator(); it.Next(); {
		_, pm := it.Element()
		if pm.GetAttr("containerPort").RawEquals(cty.NumberIntVal(8080)) {
			port = true
		}
	}
	if !port {
		t.Error("no portMapping for 8080")
	}
	if d := str(c.GetAttr("logConfiguration").GetAttr("logDriver")); d != "awslogs" {
		t.Errorf("logDriver %s, want awslogs", d)
	}
	env := map[string]cty.Value{}
	for it := c.GetAttr("environment").ElementIterator(); it.Next(); {
		_, e := it.Element()
		env[str(e.GetAttr("name"))] = e.GetAttr("value")
	}
	if v := env["ASPNETCORE_ENVIRONMENT"]; v == cty.NilVal || str(v) != "Production" {
		t.Error("environment: ASPNETCORE_ENVIRONMENT must be Production")
	}
	if _, ok := env["Kafka__BootstrapServers"]; !ok {
		t.Error("environment: no Kafka__BootstrapServers")
	}
	var secrets []string
	for it := c.GetAttr("secrets").ElementIterator(); it.Next(); {
		_, s := it.Element()
		secrets = append(secrets, str(s.GetAttr("name")))
	}
	for _, want := range []string{"ConnectionStrings__EventStore", "ConnectionStrings__Redis"} {
		if !slices.Contains(secrets, want) {
			t.Errorf("secrets: no %s from Secrets Manager", want)
		}
		if _, inline := env[want]; inline {
			t.Errorf("environment: %s is inline; it must be a secret", want)
		}
	}
	// The logs go to the module's own log group.
	var logRef bool
	for _, tr := range call.Args[0].Variables() {
		if address(tr) == "aws_cloudwatch_log_group.tracktrace_api" {
			logRef = true
		}
	}
	if !logRef {
		t.Error("container logs do not go to aws_cloudwatch_log_group.tracktrace_api")
	}
}

func TestTerraformSecretsStaySecret(t *testing.T) {
	m := loadTerraform(t)
	sensitive := map[string]bool{}
	for name, b := range m.variables {
		if v := m.value(b.Body, "sensitive"); v != cty.NilVal && v.IsKnown() && v.True() {
			sensitive[name] = true
			if _, ok := b.Body.Attributes["default"]; ok {
				t.Errorf("sensitive variable %s has a default: secrets never live in the repository", name)
			}
		}
	}
	for _, name := range []string{"db_password", "redis_auth_token"} {
		if _, declared := m.variables[name]; declared && !sensitive[name] {
			t.Errorf("variable %s must be sensitive", name)
		}
	}
	if _, managed := m.resources["aws_rds_cluster.eventstore"].Body.Attributes["manage_master_user_password"]; !managed && !sensitive["db_password"] {
		t.Error("the event store's master password needs a sensitive variable or manage_master_user_password")
	}
	// An output may not expose a secret: no reference to a sensitive
	// variable, or to a local built from one, unless marked sensitive.
	tainted := map[string]bool{}
	for name := range sensitive {
		tainted["var."+name] = true
	}
	for range len(m.locals) {
		for name, a := range m.locals {
			for _, r := range references(a.Expr) {
				if tainted[r] {
					tainted["local."+name] = true
				}
			}
		}
	}
	for name, o := range m.outputs {
		if v := m.value(o.Body, "sensitive"); v != cty.NilVal && v.True() {
			continue
		}
		for _, r := range references(o.Body.Attributes["value"].Expr) {
			if tainted[r] {
				t.Errorf("output %s exposes %s", name, r)
			}
		}
	}
}
