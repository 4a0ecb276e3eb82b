package bus

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	cases := map[string]string{
		"":                     "file:///data/culvert",
		"/tmp/bus":             "file:///tmp/bus",
		"kafka://h:9092":       "kafka://h:9092",
		"amqp://u:p@h:5672/v":  "amqp://u:p@h:5672/v",
		"file:///x/y?lease=1s": "file:///x/y?lease=1s",
	}
	for in, want := range cases {
		u, err := ParseURL(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	rel, _ := ParseURL("rel/dir")
	if !filepath.IsAbs(rel.Path) {
		t.Errorf("relative path not made absolute: %v", rel)
	}
}

func TestDefaultPathWithoutXDG(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if p := DefaultPath(); p != "/home/u/.local/share/culvert" {
		t.Fatalf("DefaultPath() = %s", p)
	}
}

func TestRedact(t *testing.T) {
	for in, secret := range map[string]string{
		"amqp://guest:hunter2@h:5672/": "hunter2",
		"redis://:s3cret@h:6379":       "s3cret",
	} {
		if out := Redact(in); strings.Contains(out, secret) {
			t.Errorf("Redact(%q) = %q shows the password", in, out)
		}
	}
	if out := Redact("/plain/path"); out != "/plain/path" {
		t.Errorf("Redact changed a path: %q", out)
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	_, err := Open(context.Background(), "nosuch://h")
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("err %v", err)
	}
}

func TestParseStart(t *testing.T) {
	if s, err := ParseStart("beginning"); err != nil || s != StartBeginning {
		t.Fatal(s, err)
	}
	if _, err := ParseStart("middle"); err == nil {
		t.Fatal("middle accepted")
	}
}
