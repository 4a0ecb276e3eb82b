// Command registryd runs the test schema registry (package registrytest)
// for the end-to-end tests (scripts/test/avro.bats): it prints its URL on
// standard output, then serves until it is killed. No registry server
// installs here; this one answers the documented Confluent REST endpoints
// culvert's client calls.
//
//	registryd [-user U -password P]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/culvert-dev/culvert/common/format/registry/registrytest"
)

func main() {
	user := flag.String("user", "", "basic auth username required of clients")
	password := flag.String("password", "", "basic auth password")
	flag.Parse()
	s := registrytest.New()
	s.Username, s.Password = *user, *password
	fmt.Println(s.URL)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	s.Close()
}
