package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/culvert-dev/culvert/common/client/auth"
	"github.com/culvert-dev/culvert/common/client/tlsfiles"
)

func TestTransient(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for err, want := range map[error]bool{
		opErr:                       true,
		io.EOF:                      true,
		fmt.Errorf("x: %w", io.EOF): true,
		goredis.ErrPoolTimeout:      true,
		errors.New("LOADING Redis is loading the dataset in memory"): false, // not a reply
		goredis.ErrClosed:        false,
		goredis.Nil:              false,
		context.Canceled:         false,
		context.DeadlineExceeded: false,
	} {
		if got := Transient(err); got != want {
			t.Errorf("Transient(%v) = %v, want %v", err, got, want)
		}
	}
	// Replies, as the server sends them.
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	key := "culvert-test:transient"
	defer c.Del(ctx, key)
	if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatalf("the machine's Redis: %v", err)
	}
	if err := c.LPush(ctx, key, "y").Err(); err == nil || Transient(err) || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		t.Errorf("WRONGTYPE: %v, transient %v", err, Transient(err))
	}
	if err := c.Do(ctx, "NOSUCHCOMMAND").Err(); err == nil || Transient(err) {
		t.Errorf("unknown command: %v, transient %v", err, Transient(err))
	}
}

func TestTLSParameters(t *testing.T) {
	o, err := Options(parse(t, "rediss://h.example:6379?tls_ca=testdata/ca.pem&tls_insecure_skip_verify=true"))
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig.RootCAs == nil || !o.TLSConfig.InsecureSkipVerify || o.TLSConfig.ServerName != "h.example" {
		t.Fatalf("TLS config %+v", o.TLSConfig)
	}
	for spec, want := range map[string]string{
		"redis://h?tls_insecure_skip_verify=true":   "tls_insecure_skip_verify needs the rediss:// scheme",
		"rediss://h?tls_insecure_skip_verify=maybe": "not true or false",
		"rediss://h?tls_cert=c.pem":                 "must be given together",
		"rediss://h?tls_cert=c.pem&tls_key=k.pem":   "loading the client certificate c.pem",
	} {
		if _, err := Options(parse(t, spec)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", spec, err, want)
		}
	}
}

func TestConnOptionsBeatTheURL(t *testing.T) {
	o := ConnOptions{URL: "rediss://alice:old@h:6379/2", Options: auth.Options{Username: "bob", Password: "s3cret", Options: tlsfiles.Options{TLSCA: "ca.pem"}}}
	u, err := o.EffectiveURL()
	if err != nil {
		t.Fatal(err)
	}
	if got := u.String(); got != "rediss://bob:s3cret@h:6379/2?tls_ca=ca.pem" {
		t.Fatalf("effective URL %s", got)
	}
	o = ConnOptions{URL: "redis://h:6379", Options: auth.Options{Options: tlsfiles.Options{TLSCA: "ca.pem"}}}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "url") || !strings.Contains(err.Error(), "rediss://") {
		t.Fatalf("--tls-ca with redis://: %v", err)
	}
	o = ConnOptions{URL: "redis://u:s3cret@h:6379?nope=1"}
	if err := o.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad parameter: %v", err)
	}
}
