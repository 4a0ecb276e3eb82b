package schema

import (
	"encoding/json"
	"strings"
	"testing"
)

type opts struct {
	Every Duration `json:"every" jsonschema:"default=10s" jsonschema_description:"How often."`
	Size  int      `json:"size" jsonschema:"minimum=1,default=5"`
	Kind  string   `json:"kind" jsonschema:"enum=x,enum=y,default=x"`
	Name  string   `json:"name" jsonschema:"required"`
}

func TestReflectAndValidate(t *testing.T) {
	s := Merge(Reflect(&opts{}))
	raw, _ := json.Marshal(s)
	for _, want := range []string{`"every":{"type":"string"`, `"format":"duration"`, `"default":"10s"`, `"minimum":1`, `"required":["name"]`, `"additionalProperties":false`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("schema lacks %s: %s", want, raw)
		}
	}
	v, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	if errs := v.Validate(map[string]any{"every": "5m", "size": 2, "kind": "y", "name": "n"}); len(errs) != 0 {
		t.Fatalf("valid options rejected: %v", errs)
	}
	errs := v.Validate(map[string]any{"every": "often", "size": 0, "kind": "z", "name": "n", "extra": 1})
	got := map[string]string{}
	for _, e := range errs {
		got[e.Field] = e.Msg
	}
	if !strings.Contains(got["every"], "duration like 10s") {
		t.Errorf("every: %q", got["every"])
	}
	for _, f := range []string{"size", "kind"} {
		if got[f] == "" {
			t.Errorf("no error for %s: %v", f, got)
		}
	}
	if len(errs) < 4 {
		t.Errorf("want errors for every, size, kind and the unknown option, got %v", got)
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.Set("1m30s"); err != nil || d.D().Seconds() != 90 {
		t.Fatalf("%v %v", d, err)
	}
	if err := d.Set("soon"); err == nil || !strings.Contains(err.Error(), "duration like 10s") {
		t.Fatalf("err %v", err)
	}
	b, _ := json.Marshal(Duration(2e9))
	if string(b) != `"2s"` {
		t.Fatalf("marshal %s", b)
	}
	if err := json.Unmarshal([]byte(`"250ms"`), &d); err != nil || d.D().Milliseconds() != 250 {
		t.Fatalf("unmarshal %v %v", d, err)
	}
}
