package all

import (
	_ "github.com/culvert-dev/culvert/common/bus/embedded" // file: and plain paths
)
