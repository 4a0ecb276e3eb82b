// Package connectortest owns what every connector's tests share: the golden
// metadata check (with -update), the shared-option checks every metadata
// must pass, and running a connector's command line inside the test process
// (Run, MustRun, Start and Running, BadOption, Exits, Help); reading,
// publishing and waiting for records on the embedded bus (ReadTopic,
// Publish, PublishValues, WaitTopic, WaitFor); and small checks on them
// (Values, TopicValues, Header, Equal, CheckSequence). A connector's own tests keep only
// their own logic.
package connectortest
