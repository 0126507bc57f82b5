package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseRedis parses ConnectionStrings.Redis into go-redis options:
//
//   - a URL that redis.ParseURL reads: "redis://[user:password@]host[:port][/db]",
//     "rediss://…" for TLS, "unix://[user:password@]/path/to/redis.sock?db=N",
//     with go-redis's query parameters (dial_timeout=1s, pool_size=20, …);
//   - a StackExchange.Redis configuration string, as the seed's .NET
//     deployment spells it: "host:port,password=…,ssl=true,defaultDatabase=0"
//     (the port defaults to 6379; client tuning such as abortConnect is
//     accepted and ignored).
//
// Its errors never contain the password.
func ParseRedis(s string) (*redis.Options, error) {
	s = strings.TrimSpace(s)
	if hasPrefixFold(s, "redis://") || hasPrefixFold(s, "rediss://") || hasPrefixFold(s, "unix://") {
		return parseRedisURL(s)
	}
	return parseStackExchange(s)
}

func parseRedisURL(s string) (*redis.Options, error) {
	u, err := url.Parse(s)
	if err != nil { // url.Parse's errors quote the input, so they are not passed on
		return nil, errors.New("malformed redis URL (percent-encode reserved characters in the password)")
	}
	o, err := redis.ParseURL(s)
	if err != nil {
		msg := err.Error()
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, mask)
		}
		return nil, errors.New(msg)
	}
	return o, nil
}

// parseStackExchange converts a StackExchange.Redis configuration string.
func parseStackExchange(s string) (*redis.Options, error) {
	o := &redis.Options{Network: "tcp"}
	var endpoints []string
	var useTLS bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		key, value, ok := strings.Cut(part, "=")
		if !ok {
			if part != "" {
				endpoints = append(endpoints, part)
			}
			continue
		}
		var err error
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "password":
			o.Password = value
		case "user":
			o.Username = value
		case "ssl":
			useTLS, err = strconv.ParseBool(value)
		case "defaultdatabase":
			o.DB, err = strconv.Atoi(value)
			if o.DB < 0 {
				err = errors.New("negative")
			}
		case "abortconnect", "allowadmin", "connectretry", "connecttimeout", "synctimeout", "asynctimeout",
			"keepalive", "name", "sslhost", "sslprotocols", "checkcertificate":
			// StackExchange.Redis client tuning with no counterpart here.
		default:
			return nil, fmt.Errorf("unknown Redis option %q", key)
		}
		if err != nil {
			return nil, fmt.Errorf("invalid value for Redis option %q", key)
		}
	}
	switch len(endpoints) {
	case 0:
		return nil, errors.New("redis connection string names no host:port")
	case 1:
	default:
		return nil, errors.New("redis connection string names several endpoints; only one is supported")
	}
	host, port, err := net.SplitHostPort(endpoints[0])
	if err != nil {
		host, port = strings.Trim(endpoints[0], "[]"), "6379"
		unbalanced := strings.Count(endpoints[0], "[") != strings.Count(endpoints[0], "]")
		if ip := net.ParseIP(host); unbalanced || strings.Contains(host, ":") && ip == nil {
			return nil, errors.New("redis address is not host:port") // only an IPv6 address holds colons
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "[]/ ") {
		return nil, errors.New("redis address is not host:port") // it may hold a stray piece of the password
	}
	o.Addr = net.JoinHostPort(host, port)
	if useTLS {
		o.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// RedactRedis returns o as a redis URL with the password masked, for logs.
func RedactRedis(o *redis.Options) string {
	u := url.URL{Scheme: "redis", Host: o.Addr, Path: "/" + strconv.Itoa(o.DB)}
	switch {
	case o.Network == "unix":
		u = url.URL{Scheme: "unix", Path: o.Addr, RawQuery: "db=" + strconv.Itoa(o.DB)}
	case o.TLSConfig != nil:
		u.Scheme = "rediss"
	}
	switch {
	case o.Password != "":
		u.User = url.UserPassword(o.Username, mask)
	case o.Username != "":
		u.User = url.User(o.Username)
	}
	return u.String()
}
