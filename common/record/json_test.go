package record

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

// TestMarshalFullIsLossless: binary keys, values and header values come
// out as base64 under a marker field, byte for byte; text as text.
func TestMarshalFullIsLossless(t *testing.T) {
	bin := []byte{0xff, 0x00, 'a', 0xc3}
	cases := []struct {
		r    Record
		want string
	}{
		{Record{Key: []byte("k"), Value: []byte(`{"a":1}`), Offset: 1, Time: time.Unix(0, 5).In(time.FixedZone("X", 3600)),
			Headers: []Header{{Key: "h", Value: []byte("v")}, {Key: "e", Value: nil}}},
			`{"key":"k","value":{"a":1},"headers":[{"key":"h","value":"v"},{"key":"e","value":""}],"time":"1970-01-01T00:00:00.000000005Z","offset":1}`},
		{Record{Value: []byte("plain"), Offset: 2}, `{"key":null,"value":"plain","offset":2}`},
		{Record{Value: nil}, `{"key":null,"value":"","offset":0}`},
		{Record{Key: bin, Value: bin, Headers: []Header{{Key: "h", Value: bin}}},
			`{"key_base64":"/wBhww==","value_base64":"/wBhww==","headers":[{"key":"h","value_base64":"/wBhww=="}],"offset":0}`},
		// JSON holding bytes that are not UTF-8 is binary too.
		{Record{Value: []byte("\"\xff\"")}, `{"key":null,"value_base64":"Iv8i","offset":0}`},
	}
	for _, c := range cases {
		b, err := MarshalFull(&c.r)
		if err != nil || string(b) != c.want {
			t.Fatalf("got %s (%v)\nwant %s", b, err, c.want)
		}
	}
	var back struct {
		ValueBase64 string `json:"value_base64"`
	}
	b, _ := MarshalFull(&Record{Value: bin})
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if v, _ := base64.StdEncoding.DecodeString(back.ValueBase64); !bytes.Equal(v, bin) {
		t.Fatalf("round trip gave %x", v)
	}
}
