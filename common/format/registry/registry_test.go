package registry

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/culvert-dev/culvert/common/format/registry/registrytest"
)

// An https registry is reached with --schema-registry-ca's CA, and refused
// without it (its CA is not the system's).
func TestRegistryTLSWithCAFile(t *testing.T) {
	reg := registrytest.NewTLS()
	defer reg.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: reg.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{URL: reg.URL, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	c, _ = New(Config{URL: reg.URL})
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	if _, err := New(Config{URL: reg.URL, CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Fatal("a missing CA file was taken")
	}
}

// Errors are told apart: not found, refused (incompatible), outage.
func TestRegistryErrors(t *testing.T) {
	reg := registrytest.New()
	defer reg.Close()
	c, _ := New(Config{URL: reg.URL})
	ctx := context.Background()
	_, err := c.SchemaByID(ctx, 7)
	if !NotFound(err) || !Refused(err) {
		t.Fatalf("unknown id: %v, want not found", err)
	}
	reg.Add("s", `"string"`)
	reg.Refuse("s", "incompatible (test)")
	_, err = c.Register(ctx, "s", `"int"`)
	if !Incompatible(err) || err.Error() != "incompatible (test)" {
		t.Fatalf("refused schema: %v, want the registry's message", err)
	}
	reg.Down(true)
	_, err = c.SchemaByID(ctx, 2)
	if err == nil || Refused(err) || NotFound(err) {
		t.Fatalf("outage: %v, want an error that is not a refusal", err)
	}
	reg.Down(false)
	if text, err := c.SchemaByID(ctx, 1); err != nil || text != `"string"` {
		t.Fatalf("schema 1: %q %v", text, err)
	}
	for _, bad := range []string{"ftp://h", "http://", "http://u:p@h", "::"} {
		if CheckURL(bad) == nil {
			t.Errorf("CheckURL(%q) took it", bad)
		}
	}
}

// An answer larger than MaxResponse is an error, not memory taken without
// end; one just under it is read.
func TestRegistryAnswerTooLarge(t *testing.T) {
	size := MaxResponse + 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		pad := strings.Repeat(" ", size-len(`{"schema":"\"string\""}`))
		w.Write([]byte(`{"schema":"\"string\""}` + pad))
	}))
	defer srv.Close()
	c, _ := New(Config{URL: srv.URL})
	_, err := c.SchemaByID(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") || Refused(err) {
		t.Fatalf("an answer of %d bytes: %v, want too large", size, err)
	}
	size = MaxResponse
	c, _ = New(Config{URL: srv.URL})
	if text, err := c.SchemaByID(context.Background(), 1); err != nil || text != `"string"` {
		t.Fatalf("an answer of %d bytes: %q, %v", size, text, err)
	}
}
