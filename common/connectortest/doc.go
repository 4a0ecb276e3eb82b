// Package connectortest owns what every connector's tests share: the golden
// metadata check (with -update), the shared-option checks every metadata
// must pass, and running a connector's command line inside the test process.
package connectortest
