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

func TestWireRoundTripAndCorruption(t *testing.T) {
	hs := []Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: nil}, {Key: "", Value: []byte("x")}}
	b := AppendHeaders(AppendBytes(nil, []byte("key")), hs)
	k, n, err := ReadBytes(b)
	if err != nil || string(k) != "key" {
		t.Fatalf("ReadBytes: %q, %v", k, err)
	}
	got, m, err := ReadHeaders(b[n:])
	if err != nil || n+m != len(b) || len(got) != 3 || got[0].Key != "a" || string(got[0].Value) != "1" || got[1].Value != nil || string(got[2].Value) != "x" {
		t.Fatalf("ReadHeaders: %+v, %d, %v", got, m, err)
	}
	for cut := 1; cut < len(b)-n; cut++ {
		if _, _, err := ReadHeaders(b[n : len(b)-cut]); err == nil {
			t.Fatalf("headers cut by %d bytes read without error", cut)
		}
	}
}
