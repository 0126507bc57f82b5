package check

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/tlm/tracktrace/internal/config"
)

// mskListener is what an MSK client authentication needs of the service:
// the bootstrap string (an aws_msk_cluster attribute), the port the
// service's security group must open, and Kafka.Security.SASL.Mechanism.
type mskListener struct {
	bootstrap string
	port      int
	mechanism string
}

var mskListeners = map[string]mskListener{
	"sasl.iam":        {"bootstrap_brokers_sasl_iam", 9098, config.SASLAWSMSKIAM},
	"sasl.scram":      {"bootstrap_brokers_sasl_scram", 9096, config.SASLScramSHA512},
	"tls":             {"bootstrap_brokers_tls", 9094, ""}, // mutual TLS: a client certificate instead
	"unauthenticated": {"bootstrap_brokers_tls", 9094, ""},
}

// mskClientAuth returns the client authentications the MSK cluster turns on.
func (m *tfModule) mskClientAuth(t *testing.T, msk *hclsyntax.Body) []string {
	t.Helper()
	cas := blocks(msk, "client_authentication")
	if len(cas) != 1 {
		t.Fatal("msk: no client_authentication block: without one MSK takes unauthenticated clients only")
	}
	ca := cas[0].Body
	on := func(body *hclsyntax.Body, name string) bool {
		v := m.value(body, name)
		return v != cty.NilVal && v.IsKnown() && !v.IsNull() && v.Type() == cty.Bool && v.True()
	}
	var auth []string
	for _, sasl := range blocks(ca, "sasl") {
		for _, mech := range []string{"iam", "scram"} {
			if on(sasl.Body, mech) {
				auth = append(auth, "sasl."+mech)
			}
		}
	}
	if len(blocks(ca, "tls")) > 0 {
		auth = append(auth, "tls")
	}
	if on(ca, "unauthenticated") {
		auth = append(auth, "unauthenticated")
	}
	return auth
}

// ecsEnvironmentExprs returns the expressions of the task's environment
// variables by name, from local.container_environment.
func (m *tfModule) ecsEnvironmentExprs(t *testing.T) map[string]hclsyntax.Expression {
	t.Helper()
	a, ok := m.locals["container_environment"]
	if !ok {
		t.Fatal("no local.container_environment (the task's environment)")
	}
	list, ok := a.Expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		t.Fatal("local.container_environment is not a list of {name, value}")
	}
	out := map[string]hclsyntax.Expression{}
	for _, item := range list.Exprs {
		obj, ok := item.(*hclsyntax.ObjectConsExpr)
		if !ok {
			t.Fatal("local.container_environment holds something else than {name, value}")
		}
		var name string
		var value hclsyntax.Expression
		for _, kv := range obj.Items {
			k, _ := kv.KeyExpr.Value(nil)
			switch k.AsString() {
			case "name":
				v, _ := kv.ValueExpr.Value(m.ctx)
				name = v.AsString()
			case "value":
				value = kv.ValueExpr
			}
		}
		out[name] = value
	}
	return out
}

// attrReferences returns what an attribute of body refers to; nothing
// when it is absent.
func attrReferences(body *hclsyntax.Body, name string) []string {
	if a, ok := body.Attributes[name]; ok {
		return references(a.Expr)
	}
	return nil
}

// refersToAttr reports whether e refers to resource.attr (e.g.
// aws_msk_cluster.kafka and bootstrap_brokers_sasl_iam).
func refersToAttr(e hcl.Expression, resource, attr string) bool {
	for _, tr := range e.Variables() {
		if address(tr) != resource || len(tr) < 3 {
			continue
		}
		if a, ok := tr[2].(hcl.TraverseAttr); ok && a.Name == attr {
			return true
		}
	}
	return false
}

// The service is configured for the client authentication the MSK cluster
// takes: the matching bootstrap brokers, TLS, the SASL mechanism, the
// port open from the tasks, an output for the brokers, and with IAM, a task
// role allowed to connect. The settings load in the service.
func TestTerraformKafkaSecurity(t *testing.T) {
	m := loadTerraform(t)
	const cluster = "aws_msk_cluster.kafka"
	auth := m.mskClientAuth(t, m.resource(t, cluster).Body)
	if len(auth) != 1 {
		t.Fatalf("msk client authentication %v: want exactly one, which the service is configured for", auth)
	}
	l := mskListeners[auth[0]]
	env := m.ecsEnvironmentExprs(t)

	if e, ok := env["Kafka__BootstrapServers"]; !ok || !refersToAttr(e, cluster, l.bootstrap) {
		t.Errorf("Kafka__BootstrapServers must be %s.%s (msk takes %s)", cluster, l.bootstrap, auth[0])
	}
	known := map[string]string{}
	for name, e := range env {
		if v, diags := e.Value(m.ctx); !diags.HasErrors() && v.IsWhollyKnown() && v.Type() == cty.String {
			known[name] = v.AsString()
		}
	}
	if known["Kafka__Security__TLS__Enabled"] != "true" {
		t.Errorf("Kafka__Security__TLS__Enabled = %q, want true: MSK's client_broker encryption is TLS", known["Kafka__Security__TLS__Enabled"])
	}
	if got := known["Kafka__Security__SASL__Mechanism"]; got != l.mechanism {
		t.Errorf("Kafka__Security__SASL__Mechanism = %q, want %q for msk %s", got, l.mechanism, auth[0])
	}

	var open bool
	for key, r := range m.resources {
		if !strings.HasPrefix(key, "aws_vpc_security_group_ingress_rule.") ||
			!slices.Contains(attrReferences(r.Body, "security_group_id"), "aws_security_group.kafka") {
			continue
		}
		if slices.Contains(attrReferences(r.Body, "referenced_security_group_id"), "aws_security_group.service") &&
			m.value(r.Body, "from_port").RawEquals(cty.NumberIntVal(int64(l.port))) {
			open = true
		}
	}
	if !open {
		t.Errorf("no ingress rule from the tasks' security group to Kafka on port %d (%s)", l.port, auth[0])
	}

	var output bool
	for _, o := range m.outputs {
		if v, ok := o.Body.Attributes["value"]; ok && refersToAttr(v.Expr, cluster, l.bootstrap) {
			output = true
		}
	}
	if !output {
		t.Errorf("no output of %s.%s", cluster, l.bootstrap)
	}

	if l.mechanism == config.SASLAWSMSKIAM {
		m.checkTaskRoleConnectsToMSK(t, cluster)
	}

	// The service accepts these settings (the brokers are known after apply).
	environ := []string{"Kafka__BootstrapServers=b-1.tracktrace.abc123.c2.kafka.us-west-2.amazonaws.com:9098"}
	for name, v := range known {
		if name != "Kafka__BootstrapServers" && name != "ASPNETCORE_ENVIRONMENT" {
			environ = append(environ, name+"="+v)
		}
	}
	if _, err := config.Load(config.Options{Dir: t.TempDir(), Environ: environ}); err != nil {
		t.Errorf("the service rejects the task's Kafka settings: %v", err)
	}
}

// checkTaskRoleConnectsToMSK asserts a policy of the task role allows
// kafka-cluster:Connect on the cluster.
func (m *tfModule) checkTaskRoleConnectsToMSK(t *testing.T, cluster string) {
	t.Helper()
	for key, r := range m.resources {
		if !strings.HasPrefix(key, "aws_iam_role_policy.") || !slices.Contains(attrReferences(r.Body, "role"), "aws_iam_role.task") {
			continue
		}
		for _, ref := range attrReferences(r.Body, "policy") {
			name, isData := strings.CutPrefix(ref, "data.")
			d, ok := m.data[name]
			if !isData || !ok {
				continue
			}
			for _, st := range blocks(d.Body, "statement") {
				if slices.Contains(stringList(m.value(st.Body, "actions")), "kafka-cluster:Connect") &&
					slices.Contains(attrReferences(st.Body, "resources"), cluster) {
					return
				}
			}
		}
	}
	t.Errorf("no policy of aws_iam_role.task allows kafka-cluster:Connect on %s: AWS_MSK_IAM signs in with the task role", cluster)
}
