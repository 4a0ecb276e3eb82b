// Command wsserver is a WebSocket server for the bats tests of
// websocket-source and websocket-sink.
//
//	wsserver -addr 127.0.0.1:0 -feed -from 0 -count 100 -subscribe 2 -subs subs.txt
//
// prints the address it listens on, then, on each connection, reads
// -subscribe messages (appending each to -subs), sends "msg-FROM" ... and
// keeps the connection open.
//
//	wsserver -addr 127.0.0.1:0 -collect out.txt
//
// appends every message received, one per line, to out.txt.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	feed := flag.Bool("feed", false, "send messages to each client")
	from := flag.Int("from", 0, "with -feed, the number of the first message")
	count := flag.Int("count", 100, "with -feed, how many messages to send")
	subscribe := flag.Int("subscribe", 0, "with -feed, messages to read from the client before sending")
	subs := flag.String("subs", "", "with -feed, file to append the client's subscribe messages to")
	collect := flag.String("collect", "", "file to append every message received to")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	appendLine := func(path, line string) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := context.Background()
		if *feed {
			for i := 0; i < *subscribe; i++ {
				_, m, err := conn.Read(ctx)
				if err != nil {
					return
				}
				if *subs != "" {
					appendLine(*subs, string(m))
				}
			}
			for i := *from; i < *from+*count; i++ {
				if err := conn.Write(ctx, websocket.MessageText, []byte("msg-"+strconv.Itoa(i))); err != nil {
					return
				}
			}
		}
		for {
			_, m, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if *collect != "" {
				appendLine(*collect, string(m))
			}
		}
	})
	fmt.Println(ln.Addr().String())
	log.Fatal(http.Serve(ln, handler))
}
