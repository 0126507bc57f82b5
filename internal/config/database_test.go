package config

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestParseDatabase(t *testing.T) {
	tests := []struct {
		in     string
		engine string
		dsn    string
	}{
		{"file:data/tracktrace.db", EngineSQLite, "file:data/tracktrace.db"},
		{"file:x.db?_pragma=busy_timeout(5000)", EngineSQLite, "file:x.db?_pragma=busy_timeout(5000)"},
		{"sqlite:data/x.db?_pragma=journal_mode(WAL)", EngineSQLite, "data/x.db?_pragma=journal_mode(WAL)"},
		{"SQLite:///var/lib/x.db", EngineSQLite, "/var/lib/x.db"},
		{"sqlite::memory:", EngineSQLite, ":memory:"},
		{"postgres://u:p@db:5432/events?sslmode=require", EnginePostgres, "postgres://u:p@db:5432/events?sslmode=require"},
		{"postgresql://db/events", EnginePostgres, "postgresql://db/events"},
		{"PostgreSQL://db/Events", EnginePostgres, "postgresql://db/Events"},
		{
			"Host=eventstore-db;Database=tracktrace_events;Username=eventstore;Password=secret",
			EnginePostgres, "host='eventstore-db' dbname='tracktrace_events' user='eventstore' password='secret'",
		},
		{
			"Server=db; Port=5433; Initial Catalog=ev; User ID=me; Pwd='it''s;\\x'; SSL Mode=VerifyFull; Timeout=15; " +
				"Command Timeout=30; Maximum Pool Size=20; Min Pool Size=2; Application Name=tracktrace; Search Path=tt",
			EnginePostgres,
			`host='db' port='5433' dbname='ev' user='me' password='it\'s;\\x' sslmode='verify-full' connect_timeout='15' ` +
				`statement_timeout='30000' application_name='tracktrace' search_path='tt' pool_max_conns='20' pool_min_conns='2'`,
		},
		{`host=h;db=d;uid=u;password="a""b";sslmode=verify-ca`, EnginePostgres, `host='h' dbname='d' user='u' password='a"b' sslmode='verify-ca'`},
		{"HOST=h1:5433,h2;DATABASE=d;USERNAME=u", EnginePostgres, "host='h1,h2' port='5433,5432' dbname='d' user='u'"},
		{"Host=h;Database=d;Port=6000;SslMode=disable;", EnginePostgres, "host='h' port='6000' dbname='d' sslmode='disable'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDatabase(tt.in)
			if err != nil || got.Engine != tt.engine || got.DSN != tt.dsn {
				t.Fatalf("ParseDatabase(%q) = %+v, %v\nwant {%s %s}", tt.in, got, err, tt.engine, tt.dsn)
			}
			if got.Engine == EnginePostgres && !strings.Contains(got.DSN, "://") {
				if _, err := libpqParse(got.DSN); err != nil {
					t.Fatalf("DSN %q does not parse by libpq rules: %v", got.DSN, err)
				}
			}
		})
	}
}

func TestParseDatabaseErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "empty"},
		{"mysql://u@h/d", "unrecognized"},
		{"data.db", "unrecognized"},
		{"sqlite:", "names no file"},
		{"Host=h", `"Database"`},
		{"Database=d", `"Host"`},
		{"Host=h;Database=d;Bogus=1", `unknown key "Bogus"`},
		{"Host=h;Database=d;Port=x", "Port"},
		{"Host=h;Database=d;Port=70000", "Port"},
		{"Host=h;Database=d;Maximum Pool Size=0", "Maximum Pool Size"},
		{"Host=h;Database=d;SSL Mode=Sometimes", "SSL Mode"},
		{"Host=h;Database=d;Password='open", "unterminated quote"},
		{"Host=h;Database=d;Password='a'b", "text after the quoted value"},
		{"Host=h;junk;Database=d", "part 2 is not Key=Value"},
		{"Host=h;Database=d\x00", "NUL"},
		{"postgres://u:p@h:port/d", "invalid port"},
		{"postgres://u:p@h/d%zz", "malformed URL"},
		{"postgres://h/d?sslmode=sometimes", "sslmode is invalid"},
		{"postgres://h/d?connect_timeout=soon", "invalid connect_timeout"},
		{"postgresql://h1,h2/d?port=1,2,3", "could not match 3 port numbers to 2 hosts"},
		{"Host=h;Database=d;SSL Mode=VerifyFull;Root Certificate=/nonexistent/ca.pem", "unable to read CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDatabase(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseDatabase(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.msg)
			}
		})
	}
}

func TestParseRedis(t *testing.T) {
	type want struct {
		network, addr, user, password string
		db                            int
		tls                           string // ServerName; "" = no TLS
		dialTimeout                   time.Duration
	}
	tests := []struct {
		in   string
		want want
	}{
		{"redis:6379", want{network: "tcp", addr: "redis:6379"}},
		{"cache", want{network: "tcp", addr: "cache:6379"}},
		{"cache:6380,password=p=w,ssl=True,defaultDatabase=2,abortConnect=false", want{network: "tcp", addr: "cache:6380", password: "p=w", db: 2, tls: "cache"}},
		{"redis://:pw@cache:6380/3", want{network: "tcp", addr: "cache:6380", password: "pw", db: 3}},
		{"rediss://user:pw@cache", want{network: "tcp", addr: "cache:6379", user: "user", password: "pw", tls: "cache"}},
		{"REDIS://[::1]:7000", want{network: "tcp", addr: "[::1]:7000"}},
		{"redis://cache/1?dial_timeout=2s", want{network: "tcp", addr: "cache:6379", db: 1, dialTimeout: 2 * time.Second}},
		{"unix://:pw@/run/redis.sock?db=4", want{network: "unix", addr: "/run/redis.sock", password: "pw", db: 4}},
	}
	for _, tt := range tests {
		o, err := ParseRedis(tt.in)
		if err != nil {
			t.Errorf("ParseRedis(%q): %v", tt.in, err)
			continue
		}
		got := want{network: o.Network, addr: o.Addr, user: o.Username, password: o.Password, db: o.DB, dialTimeout: o.DialTimeout}
		if o.TLSConfig != nil {
			got.tls = o.TLSConfig.ServerName
		}
		if got != tt.want {
			t.Errorf("ParseRedis(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{"", "a:1,b:2", "h,ssl=maybe", "h,defaultDatabase=-1", "h,bogus=1", "h:99999",
		"redis://h/x", "redis://h?bogus=1", "unix://", "ftp://h"} {
		if got, err := ParseRedis(in); err == nil {
			t.Errorf("ParseRedis(%q) = %+v, want an error", in, got)
		}
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:s3cret@h/d?password=s3cret&sslmode=require", "postgres://u:xxxxx@h/d?password=xxxxx&sslmode=require"},
		{"Host=h;Database=d;Username=u;Password='s3 cr''et'", "host='h' dbname='d' user='u' password=xxxxx"},
		{"file:x.db", "file:x.db"},
	}
	for _, tt := range tests {
		d, err := ParseDatabase(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Redacted(); got != tt.want {
			t.Errorf("Redacted(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]string{
		"cache:6380,password=s3cret,ssl=true,defaultDatabase=1": "rediss://:xxxxx@cache:6380/1",
		"redis://me:s3cret@cache/2":                             "redis://me:xxxxx@cache:6379/2",
		"redis://me@cache":                                      "redis://me@cache:6379/0",
		"unix://:s3cret@/run/redis.sock":                        "unix://:xxxxx@/run/redis.sock?db=0",
	} {
		r, err := ParseRedis(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactRedis(r); got != want {
			t.Errorf("RedactRedis(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestErrorsNeverShowPasswords covers the parsers and Load: a password may
// sit in a connection string that is wrong in some other way.
func TestErrorsNeverShowPasswords(t *testing.T) {
	const pw = "s3cr3t-PW"
	conns := []string{
		"Host=h;Password=" + pw + ";Bogus=1",
		"Password=" + pw,
		"Host=h;Database=d;Password='" + pw,
		"Host=h;Database=d;Password='" + pw + "'x",
		"Host=h;Database=d;Password=" + pw + ";Port=abc",
		"Host=h;Database=d;Password=" + pw + ";x",
		"Host=h;Database=d;Password=a;" + pw,
		"postgres://u:" + pw + "@h:badport/d",
		"postgres://u:" + pw + " x@h/d",
		"postgres://u:" + pw + "@h/d%zz",
		"postgres://u:" + pw + "@h/d?connect_timeout=" + pw,
		"postgres://u:" + pw + "@h/d?target_session_attrs=" + pw,
		"postgres://h/d?password=" + pw + "&sslmode=" + pw,
		"Host=h;Database=d;Password=" + pw + ";Root Certificate=/" + pw + ";SSL Mode=VerifyCA",
	}
	redis := []string{
		"h:6379,password=" + pw + ",ssl=maybe",
		"redis://:" + pw + "@h:notaport",
		"redis://:" + pw + "@h?db=" + pw,
		"redis://:" + pw + "@h?dial_timeout=" + pw,
		"redis://:" + pw + "@h/" + pw,
		"password=" + pw,
		"h,password=a," + pw,
		"h,password=a,x " + pw,
	}
	for _, s := range conns {
		if _, err := ParseDatabase(s); err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("ParseDatabase(%q) error = %v", s, err)
		}
		_, err := Load(Options{Dir: t.TempDir(), Environ: []string{"ConnectionStrings__EventStore=" + s}})
		if err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("Load with connection string %q: error = %v", s, err)
		}
	}
	for _, s := range redis {
		if _, err := ParseRedis(s); err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("ParseRedis(%q) error = %v", s, err)
		}
	}
}

// libpqParse splits a keyword/value DSN by libpq's rules (as pgx does).
func libpqParse(s string) (map[string]string, error) {
	out := map[string]string{}
	s = strings.TrimLeft(s, " ")
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errorf("missing =")
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " ")
		var v strings.Builder
		if strings.HasPrefix(s, "'") {
			i := 1
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						return nil, errorf("unterminated")
					}
				}
				v.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errorf("unterminated")
			}
			s = s[i+1:]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			v.WriteString(s[:end])
			s = s[end:]
		}
		out[key] = v.String()
		s = strings.TrimLeft(s, " ")
	}
	return out, nil
}

type errorf string

func (e errorf) Error() string { return string(e) }

func FuzzParseDatabase(f *testing.F) {
	for _, s := range []string{
		"file:data/tracktrace.db",
		"sqlite:x.db?_pragma=foreign_keys(1)",
		"postgres://u:p@h/d",
		"Host=eventstore-db;Database=tracktrace_events;Username=eventstore;Password=secret",
		`Host=h1:5433,h2;Database=d;Password='a''b\c';SSL Mode=Require;Maximum Pool Size=5`,
		`Host=h;Database=d;Password="x;y"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDatabase(s)
		_, _ = ParseRedis(s)
		if err != nil || d.Engine != EnginePostgres || strings.Contains(d.DSN, "://") {
			return
		}
		params, err := libpqParse(d.DSN)
		if err != nil {
			t.Fatalf("ParseDatabase(%q) gave DSN %q that libpq cannot parse: %v", s, d.DSN, err)
		}
		if params["host"] == "" || params["dbname"] == "" {
			t.Fatalf("ParseDatabase(%q) gave DSN %q without host or dbname", s, d.DSN)
		}
		red, err := libpqParse(d.Redacted())
		if pw, ok := params["password"]; ok && (err != nil || red["password"] != mask) {
			t.Fatalf("Redacted() of %q = %q, password %q not masked", d.DSN, d.Redacted(), pw)
		}
		delete(params, "password")
		delete(red, "password")
		if !maps.Equal(params, red) {
			t.Fatalf("Redacted() of %q = %q changed more than the password", d.DSN, d.Redacted())
		}
	})
}

// A Redis endpoint that is no host:port fails validation instead of being
// taken for a host name.
func TestParseRedisRejectsNonsense(t *testing.T) {
	for _, in := range []string{"nonsense:::", "a:b:c", "host:0", "host:99999", "[::1", "h/x:6379", ""} {
		if o, err := ParseRedis(in); err == nil {
			t.Errorf("ParseRedis(%q) = %s, want an error", in, o.Addr)
		}
	}
	for in, addr := range map[string]string{"::1": "[::1]:6379", "[::1]:7000": "[::1]:7000", "cache": "cache:6379",
		"cache:6380,password=x": "cache:6380"} {
		if o, err := ParseRedis(in); err != nil || o.Addr != addr {
			t.Errorf("ParseRedis(%q) = %v, %v, want %s", in, o, err, addr)
		}
	}
}
