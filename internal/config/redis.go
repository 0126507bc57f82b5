package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// RedisOptions are the settings of a Redis connection string.
type RedisOptions struct {
	Addr     string // host:port
	Username string // Redis 6 ACL user; empty = default user
	Password string
	DB       int
	TLS      bool
}

// ParseRedis parses ConnectionStrings.Redis: a "redis://[user:password@]host[:port][/db]"
// URL ("rediss://" for TLS), or a StackExchange.Redis configuration string
// "host:port,password=…,ssl=true,defaultDatabase=0". The port defaults to
// 6379. Its errors never contain the password.
func ParseRedis(s string) (RedisOptions, error) {
	s = strings.TrimSpace(s)
	if hasPrefixFold(s, "redis://") || hasPrefixFold(s, "rediss://") {
		return parseRedisURL(s)
	}
	var o RedisOptions
	var endpoints []string
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
			o.TLS, err = strconv.ParseBool(value)
		case "defaultdatabase":
			o.DB, err = strconv.Atoi(value)
			if o.DB < 0 {
				err = errors.New("negative")
			}
		case "abortconnect", "allowadmin", "connectretry", "connecttimeout", "synctimeout", "asynctimeout",
			"keepalive", "name", "sslhost", "sslprotocols", "checkcertificate":
			// StackExchange.Redis client tuning with no counterpart here.
		default:
			return RedisOptions{}, fmt.Errorf("unknown Redis option %q", key)
		}
		if err != nil {
			return RedisOptions{}, fmt.Errorf("invalid value for Redis option %q", key)
		}
	}
	switch len(endpoints) {
	case 0:
		return RedisOptions{}, errors.New("redis connection string names no host:port")
	case 1:
	default:
		return RedisOptions{}, errors.New("redis connection string names several endpoints; only one is supported")
	}
	addr, err := redisAddr(endpoints[0])
	if err != nil {
		return RedisOptions{}, err
	}
	o.Addr = addr
	return o, nil
}

func parseRedisURL(s string) (RedisOptions, error) {
	u, err := url.Parse(s)
	if err != nil { // url.Parse's errors quote the input, so they are not passed on
		return RedisOptions{}, errors.New("malformed redis URL (percent-encode reserved characters in the password)")
	}
	o := RedisOptions{TLS: strings.EqualFold(u.Scheme, "rediss"), Username: u.User.Username()}
	o.Password, _ = u.User.Password()
	if o.Addr, err = redisAddr(u.Host); err != nil {
		return RedisOptions{}, err
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if o.DB, err = strconv.Atoi(db); err != nil || o.DB < 0 {
			return RedisOptions{}, fmt.Errorf("redis URL: database %q is not a number", db)
		}
	}
	return o, nil
}

func redisAddr(hostport string) (string, error) {
	if hostport == "" {
		return "", errors.New("redis connection string names no host")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "[]/ ") {
		return "", errors.New("redis address is not host:port") // it may hold a stray piece of the password
	}
	return net.JoinHostPort(host, port), nil
}

// Redacted returns o as a redis URL with the password masked, for logs.
func (o RedisOptions) Redacted() string {
	u := url.URL{Scheme: "redis", Host: o.Addr, Path: "/" + strconv.Itoa(o.DB)}
	if o.TLS {
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
