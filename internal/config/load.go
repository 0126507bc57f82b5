package config

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// Options says where Load finds the configuration.
type Options struct {
	// Dir holds appsettings.json and appsettings.{Environment}.json (default ".").
	// File, if set, names the base settings file instead, which must then
	// exist; appsettings.{Environment}.json is looked for beside it.
	Dir, File string
	// Environment, from --environment, overrides the environment variables
	// TRACKTRACE_ENVIRONMENT, ASPNETCORE_ENVIRONMENT and DOTNET_ENVIRONMENT.
	Environment string
	// Environ holds "KEY=value" pairs, as os.Environ returns them. Nil means
	// an empty environment: the process environment is only read if passed.
	Environ []string
	// SecretsDir is a key-per-file secrets directory, such as a mounted
	// Kubernetes secret; default $TRACKTRACE_SECRETS_DIR; empty = none.
	SecretsDir string
	// Overrides come from repeated --set flags: "Section:Key=value" or
	// "Section__Key=value".
	Overrides []string
}

// Load reads the configuration. Sources, later wins:
//
//  1. Default();
//  2. appsettings.json (a missing file is fine; a malformed one is an error
//     naming the file, line and column; // and /* */ comments, trailing
//     commas and a byte order mark are tolerated, as in .NET);
//  3. appsettings.{Environment}.json;
//  4. environment variables Section__Key, e.g. Kafka__BootstrapServers,
//     Monitoring__Metrics__Tags__region, Tracking__EntityTypes__0; variables
//     whose first segment is no section are ignored;
//  5. files in SecretsDir named like those variables, holding the value
//     (trailing newlines trimmed; dotfiles such as Kubernetes' ..data skipped);
//  6. Options.Overrides.
//
// Keys match case-insensitively. A JSON array replaces the whole list an
// earlier source set; a list can also be given as one comma-separated string.
// ${NAME} in a string value expands from Options.Environ. A non-empty
// ConnectionStrings.EventStore or .ReadModels replaces EventStore.ConnectionString
// or ReadModels.ConnectionString.
//
// Config.Features holds every known flag (see DefaultFeatures), spelled as
// the Feature constants are. Unknown keys and unknown flag names become
// Config.Warnings. Problems with values, from every source at once, are
// returned as a *ValidationError, together with the Config so that its
// Warnings can be shown too; such a Config must not be run. Unreadable or
// malformed files are returned as other errors.
func Load(opts Options) (*Config, error) {
	src, err := readSources(opts)
	if err != nil {
		return nil, err
	}
	cfg := Default()
	cfg.Environment = src.environment
	cfg.Features = nil // bound as the sources spell the names, then resolved
	b := newBinder(src.tree, src.env)
	b.bind(reflect.ValueOf(cfg).Elem(), nil)
	cfg.Warnings = b.unknown()
	var unknownFlags []string
	cfg.Features, unknownFlags = resolveFeatures(cfg.Features)
	cfg.Warnings = append(cfg.Warnings, unknownFlags...)
	cfg.Warnings = append(cfg.Warnings, kafkaWarnings(cfg.Kafka)...)
	if s := cfg.ConnectionStrings.EventStore; s != "" {
		cfg.EventStore.ConnectionString = s
	}
	if s := cfg.ConnectionStrings.ReadModels; s != "" {
		cfg.ReadModels.ConnectionString = s
	}
	ch := checker{problems: append(src.problems, b.problems...)}
	if ch.validate(cfg); len(ch.problems) > 0 {
		return cfg, &ValidationError{Problems: ch.problems}
	}
	cfg.normalize()
	return cfg, nil
}

// sources is what the configuration sources say, merged.
type sources struct {
	environment string
	env         map[string]string // Options.Environ
	tree        tree
	problems    []Problem
}

var environmentName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func readSources(opts Options) (*sources, error) {
	src := &sources{env: environMap(opts.Environ), tree: tree{}}
	src.environment = environment(opts, src.env)
	base, envFile := settingsFiles(opts, src.environment)
	if !environmentName.MatchString(src.environment) {
		envFile = "" // not a file name; validation reports it
	}
	for _, f := range []string{base, envFile} {
		if f == "" {
			continue
		}
		obj, err := readJSONFile(f, f == opts.File)
		if err != nil {
			return nil, err
		}
		src.tree.addJSON(nil, obj, f)
	}

	for _, kv := range opts.Environ {
		name, value, _ := strings.Cut(kv, "=")
		if segs, ok := sectionKey(name); ok {
			src.tree.set(segs, value, "environment variable "+name)
		}
	}

	if dir := secretsDir(opts, src.env); dir != "" {
		err := forEachSecret(dir, func(name string, segs []string, value []byte) {
			src.tree.set(segs, strings.TrimRight(string(value), "\r\n"), "secret file "+name)
		})
		if err != nil {
			return nil, err
		}
	}

	for _, o := range opts.Overrides {
		key, value, ok := strings.Cut(o, "=")
		segs := strings.Split(strings.ReplaceAll(strings.TrimSpace(key), "__", ":"), ":")
		if !ok || slices.Contains(segs, "") {
			src.problems = append(src.problems, Problem{"--set", fmt.Sprintf("%q: want Section:Key=value", key)})
			continue
		}
		src.tree.set(segs, value, "--set "+key)
	}
	return src, nil
}

func environMap(environ []string) map[string]string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func environment(opts Options, env map[string]string) string {
	return cmp.Or(opts.Environment, env["TRACKTRACE_ENVIRONMENT"], env["ASPNETCORE_ENVIRONMENT"],
		env["DOTNET_ENVIRONMENT"], "Development")
}

func secretsDir(opts Options, env map[string]string) string {
	return cmp.Or(opts.SecretsDir, env["TRACKTRACE_SECRETS_DIR"])
}

func settingsFiles(opts Options, environment string) (base, envFile string) {
	base = opts.File
	if base == "" {
		base = filepath.Join(cmp.Or(opts.Dir, "."), "appsettings.json")
	}
	return base, filepath.Join(filepath.Dir(base), "appsettings."+environment+".json")
}

// sectionKey splits an environment variable or secret file name such as
// Kafka__BootstrapServers into its key segments, if it names a key of a
// configuration section.
func sectionKey(name string) ([]string, bool) {
	segs := strings.Split(name, "__")
	if len(segs) < 2 || slices.Contains(segs, "") {
		return nil, false
	}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("config") != "-" && strings.EqualFold(f.Name, segs[0]) {
			return segs, true
		}
	}
	return nil, false
}

// forEachSecret calls fn for every regular file in dir named like a
// configuration key; dotfiles (Kubernetes' ..data and timestamped
// directories) and other files are skipped.
func forEachSecret(dir string, fn func(name string, segs []string, value []byte)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("config: secrets directory: %w", err)
	}
	for _, e := range entries {
		segs, ok := sectionKey(e.Name())
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() { // Stat follows Kubernetes' symlinks
			continue
		}
		value, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		fn(e.Name(), segs, value)
	}
	return nil
}

// fingerprint hashes the files Load reads, to notice when one changes.
func fingerprint(opts Options) [sha256.Size]byte {
	env := environMap(opts.Environ)
	h := sha256.New()
	base, envFile := settingsFiles(opts, environment(opts, env))
	for _, f := range []string{base, envFile} {
		b, err := os.ReadFile(f)
		fmt.Fprintf(h, "%s %t %d\n", f, err == nil, len(b))
		h.Write(b)
	}
	if dir := secretsDir(opts, env); dir != "" {
		err := forEachSecret(dir, func(name string, _ []string, value []byte) {
			fmt.Fprintf(h, "%s %d\n", name, len(value))
			h.Write(value)
		})
		fmt.Fprintf(h, "%t\n", err == nil)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// readJSONFile reads a settings file; a missing one is nil unless required.
// Comments, trailing commas (hujson) and a byte order mark are tolerated,
// as .NET's JSON configuration reader tolerates them.
func readJSONFile(path string, required bool) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// Blanked rather than cut, as hujson blanks comments: every byte keeps
	// its offset, so errors point at the right line and column.
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		data = append([]byte("   "), data[3:]...)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("config: %s: empty file, want a JSON object", path)
	}
	data, err = hujson.Standardize(data)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %s", path, strings.TrimPrefix(err.Error(), "hujson: "))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		// hujson accepted the document, so this is not expected; still,
		// name the place.
		offset := dec.InputOffset()
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			offset = se.Offset
		}
		line, col := lineCol(data, offset)
		return nil, fmt.Errorf("config: %s: line %d, column %d: %v", path, line, col, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config: %s: want a JSON object at the top level", path)
	}
	return obj, nil
}

// lineCol returns the 1-based line and column of the byte before offset,
// where encoding/json's SyntaxError.Offset points just past the culprit.
func lineCol(data []byte, offset int64) (line, col int) {
	pos := int(min(max(offset-1, 0), int64(len(data))))
	nl := bytes.LastIndexByte(data[:pos], '\n')
	return 1 + bytes.Count(data[:pos], []byte("\n")), pos - nl
}

// tree holds every key the sources set, by lower-cased colon-separated path
// ("kafka:topics:domainevents"), as .NET's configuration does.
type tree map[string]entry

// entry is one key's value and where it came from.
type entry struct {
	value  any      // string, json.Number, bool, nil (JSON null) or arrayStart
	segs   []string // the key as spelled in its source
	source string
}

// arrayStart marks a key that a JSON array set; its elements are the
// children 0, 1, ….
type arrayStart struct{}

func treeKey(segs []string) string { return strings.ToLower(strings.Join(segs, ":")) }

func (t tree) set(segs []string, value any, source string) {
	t[treeKey(segs)] = entry{value, slices.Clone(segs), source}
}

func (t tree) addJSON(segs []string, v any, source string) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			// As in .NET, a colon in a JSON key separates path segments.
			t.addJSON(append(slices.Clip(segs), strings.Split(k, ":")...), child, source)
		}
	case []any:
		// Unlike .NET, which merges arrays element by element, an array
		// replaces what came before: a shorter allow-list must not inherit
		// entries from the base file.
		prefix := treeKey(segs)
		for k := range t {
			if k == prefix || strings.HasPrefix(k, prefix+":") {
				delete(t, k)
			}
		}
		t.set(segs, arrayStart{}, source)
		for i, child := range v {
			t.addJSON(append(slices.Clip(segs), strconv.Itoa(i)), child, source)
		}
	default:
		t.set(segs, v, source)
	}
}
