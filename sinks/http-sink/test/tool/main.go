// Command tool is what http-sink's bats tests use besides the binaries
// under test:
//
//	tool serve -url-file F -log F [-fail 503,503] [-retry-after 2] [-reject TEXT] [-fail-every N] [-delay-max D]
//	    an HTTP endpoint on 127.0.0.1 (a free port, written to -url-file)
//	    that appends one JSON line per request to -log: time (unix seconds),
//	    method, content_type, status and body. It answers the first requests
//	    with the statuses of -fail (with Retry-After: -retry-after when set),
//	    400 with a JSON error to a body containing -reject, 503 to every
//	    -fail-every'th request, and 204 to the rest, after a random delay of
//	    up to -delay-max.
//	tool publish -bus DIR -topic T
//	    publishes each line of standard input, "key<TAB>value", as a record
//	    with that key.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/culvert-dev/culvert/common/bus"
	_ "github.com/culvert-dev/culvert/common/bus/all"
	"github.com/culvert-dev/culvert/common/record"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tool serve|publish ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "publish":
		err = publish(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tool:", err)
		os.Exit(1)
	}
}

type entry struct {
	Time        float64 `json:"time"`
	Method      string  `json:"method"`
	ContentType string  `json:"content_type"`
	Auth        string  `json:"authorization,omitempty"`
	Status      int     `json:"status"`
	Body        string  `json:"body"`
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	urlFile := fs.String("url-file", "", "file to write the endpoint's URL to")
	logFile := fs.String("log", "", "file to append a JSON line per request to")
	fail := fs.String("fail", "", "comma-separated statuses for the first requests")
	retryAfter := fs.String("retry-after", "", "Retry-After header of the -fail answers")
	reject := fs.String("reject", "", "answer 400 to bodies containing this")
	failEvery := fs.Int("fail-every", 0, "answer 503 to every N'th request")
	delayMax := fs.Duration("delay-max", 0, "longest random delay before answering")
	fs.Parse(args)
	var statuses []int
	for _, s := range strings.Split(*fail, ",") {
		if s = strings.TrimSpace(s); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("-fail: %w", err)
			}
			statuses = append(statuses, n)
		}
	}
	lf, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	n := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if *delayMax > 0 {
			time.Sleep(rand.N(*delayMax))
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		status := http.StatusNoContent
		switch {
		case n <= len(statuses):
			status = statuses[n-1]
			if *retryAfter != "" {
				w.Header().Set("Retry-After", *retryAfter)
			}
		case *reject != "" && strings.Contains(string(body), *reject):
			status = http.StatusBadRequest
		case *failEvery > 0 && n%*failEvery == 0:
			status = http.StatusServiceUnavailable
		}
		e := entry{Time: float64(time.Now().UnixNano()) / 1e9, Method: r.Method, ContentType: r.Header.Get("Content-Type"),
			Auth: r.Header.Get("Authorization"), Status: status, Body: string(body)}
		b, _ := json.Marshal(e)
		lf.Write(append(b, '\n'))
		w.WriteHeader(status)
		if status == http.StatusBadRequest {
			io.WriteString(w, `{"error":"rejected by the test endpoint"}`)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*urlFile+".tmp", []byte("http://"+l.Addr().String()+"/ingest"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(*urlFile+".tmp", *urlFile); err != nil {
		return err
	}
	return (&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}).Serve(l)
}

func publish(args []string) error {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	busDir := fs.String("bus", "", "bus directory or URL")
	topic := fs.String("topic", "", "topic")
	fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, *busDir)
	if err != nil {
		return err
	}
	defer b.Close()
	var recs []record.Record
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			return fmt.Errorf("line %q has no tab", sc.Text())
		}
		recs = append(recs, record.Record{Key: []byte(k), Value: []byte(v), Time: time.Now()})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return bus.Publish(ctx, b, *topic, recs...)
}
