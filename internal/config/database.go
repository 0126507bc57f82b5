package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Database engines a connection string can select.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// Database is a parsed connection string: which engine it selects and the
// DSN to open it with.
type Database struct {
	Engine string // EngineSQLite or EnginePostgres
	// DSN is a modernc.org/sqlite file name (query parameters kept) for
	// SQLite, and a URL or keyword/value string that pgx's ParseConfig and
	// pgxpool.ParseConfig accept for PostgreSQL.
	DSN string
}

// ParseDatabase parses a connection string:
//
//   - "file:…" is SQLite, passed on unchanged; "sqlite:…" is SQLite with the
//     prefix (and a following "//") stripped, e.g. "sqlite:data/x.db?_pragma=…";
//   - "postgres://…" and "postgresql://…" URLs are PostgreSQL, passed on
//     unchanged but for the scheme, lower-cased;
//   - Npgsql's "Host=…;Port=…;Database=…;Username=…;Password=…" is PostgreSQL,
//     converted to a libpq keyword/value DSN (see npgsqlKeys for the keys).
//
// PostgreSQL strings are then checked with pgconn.ParseConfig, the parser
// that will open them. Its errors never contain the password.
func ParseDatabase(s string) (Database, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Database{}, errors.New("empty connection string")
	case hasPrefixFold(s, "file:"):
		return Database{EngineSQLite, s}, nil
	case hasPrefixFold(s, "sqlite:"):
		name := strings.TrimPrefix(s[len("sqlite:"):], "//")
		if name == "" || name[0] == '?' {
			return Database{}, errors.New("sqlite connection string names no file")
		}
		return Database{EngineSQLite, name}, nil
	case hasPrefixFold(s, "postgres://"), hasPrefixFold(s, "postgresql://"):
		// pgx recognizes the scheme in lower case only.
		scheme, rest, _ := strings.Cut(s, "://")
		return checkPostgres(strings.ToLower(scheme) + "://" + rest)
	case strings.Contains(s, "="):
		d, err := parseNpgsql(s)
		if err != nil {
			return Database{}, err
		}
		return checkPostgres(d.DSN)
	}
	return Database{}, errors.New("unrecognized connection string: want file:…, sqlite:…, postgres://… or Host=…;Database=…")
}

// checkPostgres checks a PostgreSQL DSN with pgx's own parser, the one
// that will open it, so that what it would refuse at connection time is a
// configuration problem at start.
func checkPostgres(dsn string) (Database, error) {
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return Database{}, fmt.Errorf("invalid PostgreSQL connection string: %s", pgProblem(dsn, err))
	}
	return Database{EnginePostgres, dsn}, nil
}

// pgProblem says what pgconn.ParseConfig found wrong with dsn without
// quoting dsn: pgx's message embeds the connection string, redacted only
// on a best-effort basis, and its cause may quote pieces of it.
func pgProblem(dsn string, err error) string {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return scrubPasswords(dsn, err.Error())
	}
	// pce reads "cannot parse `<dsn>`: <problem>[ (<cause>)]"; the problem
	// is one of pgx's own phrases.
	msg, cause := pce.Error(), pce.Unwrap()
	if cause != nil {
		msg = strings.TrimSuffix(msg, " ("+cause.Error()+")")
	}
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+len("`: "):]
	}
	switch {
	case msg == "failed to parse as URL":
		// The cause quotes the URL.
		return "malformed URL (percent-encode reserved characters such as @ : / ? # % in the user name and password)"
	case cause != nil:
		msg += ": " + cause.Error()
	}
	return scrubPasswords(dsn, msg)
}

// scrubPasswords masks in msg the passwords that dsn holds, as far as they
// can be told.
func scrubPasswords(dsn, msg string) string {
	var pws []string
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if pw, ok := u.User.Password(); ok {
			pws = append(pws, pw, strings.TrimPrefix(url.UserPassword("", pw).String(), ":"))
		}
		for k, vs := range u.Query() {
			if strings.EqualFold(k, "password") {
				pws = append(pws, vs...)
			}
		}
	} else {
		for s := dsn; ; { // keyword/value, as parseNpgsql writes it
			i := strings.Index(s, "password=")
			if i < 0 {
				break
			}
			s = s[i+len("password="):]
			end := libpqValueEnd(s)
			quoted := strings.Trim(s[:end], "'")
			pws = append(pws, quoted, strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(quoted))
			s = s[end:]
		}
	}
	for _, pw := range pws {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, mask)
		}
	}
	return msg
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// npgsqlKeys maps Npgsql's keys, lower-cased and without spaces, to libpq's.
var npgsqlKeys = map[string]string{
	"host": "host", "server": "host",
	"port":     "port",
	"database": "dbname", "db": "dbname", "initialcatalog": "dbname",
	"username": "user", "userid": "user", "user": "user", "uid": "user",
	"password": "password", "pwd": "password",
	"sslmode":         "sslmode",
	"rootcertificate": "sslrootcert",
	"timeout":         "connect_timeout",
	"commandtimeout":  "statement_timeout",
	"applicationname": "application_name",
	"searchpath":      "search_path",
	"maximumpoolsize": "pool_max_conns",
	"maxpoolsize":     "pool_max_conns",
	"minimumpoolsize": "pool_min_conns",
	"minpoolsize":     "pool_min_conns",
}

// libpqOrder is the order keywords are written in.
var libpqOrder = []string{"host", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
	"connect_timeout", "statement_timeout", "application_name", "search_path", "pool_max_conns", "pool_min_conns"}

var sslModes = map[string]string{
	"disable": "disable", "allow": "allow", "prefer": "prefer", "require": "require",
	"verifyca": "verify-ca", "verifyfull": "verify-full",
}

const npgsqlKnownKeys = "Host, Port, Database, Username, Password, SSL Mode, Root Certificate, Timeout, Command Timeout, " +
	"Application Name, Search Path, Maximum Pool Size, Minimum Pool Size"

func parseNpgsql(s string) (Database, error) {
	pairs, err := splitNpgsql(s)
	if err != nil {
		return Database{}, err
	}
	params := map[string]string{}
	for _, p := range pairs {
		kw, ok := npgsqlKeys[strings.ToLower(strings.ReplaceAll(p.key, " ", ""))]
		if !ok {
			return Database{}, fmt.Errorf("unknown key %q in connection string (known: %s)", p.key, npgsqlKnownKeys)
		}
		v := p.value
		if strings.ContainsRune(v, 0) {
			return Database{}, fmt.Errorf("%s: contains a NUL byte", p.key)
		}
		switch kw {
		case "sslmode":
			mode, ok := sslModes[strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(v))]
			if !ok {
				return Database{}, fmt.Errorf("%s: %q is not one of Disable, Allow, Prefer, Require, VerifyCA, VerifyFull", p.key, v)
			}
			v = mode
		case "port", "connect_timeout", "statement_timeout", "pool_max_conns", "pool_min_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n == 0 && (kw == "port" || kw == "pool_max_conns") || kw == "port" && n > 65535 {
				return Database{}, fmt.Errorf("%s: %q is not a valid number", p.key, v)
			}
			if kw == "statement_timeout" { // Npgsql counts seconds, PostgreSQL milliseconds
				v = strconv.Itoa(n * 1000)
			}
		}
		params[kw] = v
	}
	if params["host"] == "" {
		return Database{}, errors.New(`connection string lacks the "Host" key`)
	}
	if params["dbname"] == "" {
		return Database{}, errors.New(`connection string lacks the "Database" key`)
	}
	if err := splitHostPorts(params); err != nil {
		return Database{}, err
	}

	var b strings.Builder
	quote := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	for _, kw := range libpqOrder {
		if v, ok := params[kw]; ok {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s='%s'", kw, quote.Replace(v))
		}
	}
	return Database{EnginePostgres, b.String()}, nil
}

// splitHostPorts moves ports written into Npgsql's host list ("h1:5433,h2")
// to libpq's parallel port list.
func splitHostPorts(params map[string]string) error {
	hosts := strings.Split(params["host"], ",")
	ports := make([]string, len(hosts))
	split := false
	for i, h := range hosts {
		hosts[i], ports[i] = strings.TrimSpace(h), params["port"]
		if host, port, err := net.SplitHostPort(hosts[i]); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("Host: %q has an invalid port", hosts[i])
			}
			hosts[i], ports[i], split = host, port, true
		}
		if hosts[i] == "" {
			return errors.New("Host: empty host name")
		}
	}
	if split {
		for i := range ports {
			ports[i] = cmp.Or(ports[i], "5432")
		}
		params["host"], params["port"] = strings.Join(hosts, ","), strings.Join(ports, ",")
	}
	return nil
}

type keyValue struct{ key, value string }

// splitNpgsql splits a DbConnectionStringBuilder-style string: Key=Value
// pairs separated by ';', values optionally quoted with ' or " (a doubled
// quote stands for itself). Errors never quote values.
func splitNpgsql(s string) ([]keyValue, error) {
	var pairs []keyValue
	for n := 1; ; n++ {
		s = strings.TrimLeft(s, " \t\r\n;")
		if s == "" {
			return pairs, nil
		}
		eq := strings.IndexByte(s, '=')
		if semi := strings.IndexByte(s, ';'); eq < 0 || semi >= 0 && semi < eq {
			return nil, fmt.Errorf("malformed connection string: part %d is not Key=Value", n)
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\r\n")
		if s == "" || (s[0] != '\'' && s[0] != '"') {
			end := strings.IndexByte(s, ';')
			if end < 0 {
				end = len(s)
			}
			pairs = append(pairs, keyValue{key, strings.TrimSpace(s[:end])})
			s = s[end:]
			continue
		}
		q, value := s[0], []byte(nil)
		i := 1
		for ; i < len(s); i++ {
			if s[i] == q {
				if i+1 < len(s) && s[i+1] == q {
					i++
				} else {
					break
				}
			}
			value = append(value, s[i])
		}
		if i == len(s) {
			return nil, fmt.Errorf("malformed connection string: unterminated quote in the value of %q", key)
		}
		s = strings.TrimLeft(s[i+1:], " \t\r\n")
		if s != "" && s[0] != ';' {
			return nil, fmt.Errorf("malformed connection string: text after the quoted value of %q", key)
		}
		pairs = append(pairs, keyValue{key, string(value)})
	}
}

const mask = "xxxxx"

// Redacted returns d.DSN with any password masked, for logs.
func (d Database) Redacted() string {
	switch {
	case d.Engine != EnginePostgres:
		return d.DSN
	case hasPrefixFold(d.DSN, "postgres://"), hasPrefixFold(d.DSN, "postgresql://"):
		return redactURL(d.DSN)
	}
	return redactKeywordValue(d.DSN)
}

// redactKeywordValue masks the password in a libpq keyword/value DSN,
// reading it by libpq's rules.
func redactKeywordValue(dsn string) string {
	var out strings.Builder
	for s := dsn; ; {
		rest := strings.TrimLeft(s, " \t\r\n")
		out.WriteString(s[:len(s)-len(rest)])
		if s = rest; s == "" {
			return out.String()
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return out.String() + mask
		}
		key := strings.TrimSpace(s[:eq])
		rest = strings.TrimLeft(s[eq+1:], " \t\r\n")
		out.WriteString(s[:len(s)-len(rest)])
		end := libpqValueEnd(rest)
		if strings.EqualFold(key, "password") {
			out.WriteString(mask)
		} else {
			out.WriteString(rest[:end])
		}
		s = rest[end:]
	}
}

// libpqValueEnd returns where the value at the start of s ends: after its
// closing quote, or at the first unescaped space.
func libpqValueEnd(s string) int {
	quoted := strings.HasPrefix(s, "'")
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case quoted && i > 0 && s[i] == '\'':
			return i + 1
		case !quoted && strings.IndexByte(" \t\r\n", s[i]) >= 0:
			return i
		}
	}
	return len(s)
}

// redactURL masks the userinfo password and any password query parameter.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return mask
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q[k] = []string{mask}
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
