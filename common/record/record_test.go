package record

import "testing"

func TestHeaders(t *testing.T) {
	var r Record
	r.SetHeader("a", []byte("1"))
	r.Headers = append(r.Headers, Header{Key: "a", Value: []byte("2")}, Header{Key: "b", Value: []byte("3")})
	if v, ok := r.Header("a"); !ok || string(v) != "1" {
		t.Fatalf("Header(a) = %q, %v", v, ok)
	}
	r.SetHeader("a", []byte("9"))
	n := 0
	for _, h := range r.Headers {
		if h.Key == "a" {
			n++
		}
	}
	if v, _ := r.Header("a"); n != 1 || string(v) != "9" {
		t.Fatalf("SetHeader left %d headers a, value %q", n, v)
	}
	if _, ok := r.Header("missing"); ok {
		t.Fatal("missing header found")
	}
}
