// Package connectortest owns what every connector's tests share. Its
// acceptance suites, RunSourceSuite and RunSinkSuite, are the bustest of
// connectors: given a Driver that says how to start, feed or read and
// restart its outside system, every connector passes the same scenarios
// (round trip, restart of the outside system, poison message, TLS, bad
// options, SIGTERM), and a scenario that does not apply is named with its
// reason. Beside them: the golden metadata check (with -update), the
// shared-option checks every metadata must pass, and running a
// connector's command line inside the test process (Run, MustRun, Start
// and Running, BadOption, Exits, Help); reading, publishing and waiting
// for records on the embedded bus (ReadTopic, Publish, PublishValues,
// WaitTopic, WaitFor); and small checks on them (Values, TopicValues,
// Header, Equal, CheckSequence). A connector's own tests keep only their
// own logic.
package connectortest
