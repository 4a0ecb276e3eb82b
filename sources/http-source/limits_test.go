package main

import (
	"net/http"
	"testing"
)

// TestBudget: a request takes from the budget while the total stays within
// the limit, or when it holds all that is used (a request alone is always
// taken); what is released can be taken again.
func TestBudget(t *testing.T) {
	b := &budget{limit: 100}
	a, c := reservation{b: b}, reservation{b: b}
	if !a.take(150) {
		t.Fatal("a request alone was refused")
	}
	if !a.take(50) {
		t.Fatal("a request alone was refused more")
	}
	if c.take(1) {
		t.Fatal("a second request was taken beyond the limit")
	}
	a.release()
	if b.used.Load() != 0 {
		t.Fatalf("used %d after release", b.used.Load())
	}
	if !c.take(60) || !a.take(40) || a.take(1) || c.take(1) {
		t.Fatal("two requests within the limit: wrong answers")
	}
	c.release()
	a.release()
	if b.used.Load() != 0 {
		t.Fatalf("used %d after release", b.used.Load())
	}
}

// TestConnsKeepAlives: keep-alives go off when --max-connections are open
// and on again once at most half are, also with a limit of 1.
func TestConnsKeepAlives(t *testing.T) {
	for _, max := range []int{1, 4} {
		srv := &http.Server{}
		c := &conns{max: max}
		hook := c.track(srv)
		for i := 0; i < max; i++ {
			if c.off {
				t.Fatalf("max %d: keep-alives off at %d connections", max, i)
			}
			hook(nil, http.StateNew)
		}
		if !c.off {
			t.Fatalf("max %d: keep-alives on at the limit", max)
		}
		for i := max; i > max/2; i-- {
			if !c.off {
				t.Fatalf("max %d: keep-alives on again at %d connections", max, i)
			}
			hook(nil, http.StateClosed)
		}
		if c.off {
			t.Fatalf("max %d: keep-alives still off at %d connections", max, max/2)
		}
	}
}
