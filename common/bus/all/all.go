// Package all registers every bus backend. The cli package imports it, so
// every connector can use every backend.
package all

import (
	_ "github.com/culvert-dev/culvert/common/bus/embedded" // file: and plain paths
)
