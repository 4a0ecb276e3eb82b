package main

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	redisclient "github.com/culvert-dev/culvert/common/client/redis"
	"github.com/culvert-dev/culvert/common/client/redis/redistest"
	"github.com/culvert-dev/culvert/common/connector"
)

// afterBLMove runs f once, after the first BLMOVE that succeeded (its
// connection back in the pool), before the LMOVE pipeline that follows.
type afterBLMove struct {
	once sync.Once
	f    func()
}

func (h *afterBLMove) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *afterBLMove) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}
func (h *afterBLMove) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && cmd.Name() == "blmove" {
			h.once.Do(h.f)
		}
		return err
	}
}

// openList opens a source reading list with --count 10.
func openList(t *testing.T, url, list string) *source {
	t.Helper()
	opts := Options{ConnOptions: redisclient.ConnOptions{URL: url}, List: list, Count: 10, Pop: "right"}
	src, err := newSource(&opts, connector.Env{Topic: "t", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*source)
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestListPipelineWithoutConnection: the BLMOVE of a read succeeded, then
// the password changed and the connections were closed: the LMOVE
// pipeline that follows gets no connection (WRONGPASS on a new one, an
// error go-redis does not put on the commands). The read must fail, never
// deliver the pipeline's commands as empty records (it delivered 9), and
// the item moved stays in the processing list for the next start.
func TestListPipelineWithoutConnection(t *testing.T) {
	srv := redistest.StartServer(t, nil)
	url := srv.User("app", "oldpw")
	admin := srv.Client()
	ctx := context.Background()
	if err := admin.LPush(ctx, "jobs", "a", "b", "c", "d", "e").Err(); err != nil {
		t.Fatal(err)
	}
	s := openList(t, url, "jobs")
	s.conn.AddHook(&afterBLMove{f: func() {
		srv.RotatePassword("app", "newpw")
		// Until the pool sees the connection closed.
		time.Sleep(200 * time.Millisecond)
	}})
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := s.Read(rctx)
	var values []string
	for _, r := range b.Records {
		values = append(values, string(r.Value))
	}
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || len(b.Records) != 0 {
		t.Fatalf("Read: records %q, error %v; want no records and WRONGPASS", values, err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) || redisclient.Transient(err) {
		t.Errorf("refused credentials are transient: %v", err)
	}
	if got := admin.LRange(ctx, "jobs:processing", 0, -1).Val(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("processing list %q, want [a]", got)
	}
	if got := admin.LRange(ctx, "jobs", 0, -1).Val(); !slices.Equal(got, []string{"e", "d", "c", "b"}) {
		t.Errorf("list %q, want [e d c b]", got)
	}
	// The next start, with the new password, delivers it first.
	s = openList(t, strings.Replace(url, "oldpw", "newpw", 1), "jobs")
	if b, err := s.Read(rctx); err != nil || len(b.Records) != 1 || string(b.Records[0].Value) != "a" {
		t.Fatalf("Read after a restart: %v, %d records", err, len(b.Records))
	}
}
