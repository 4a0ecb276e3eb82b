// Package bustest is the conformance suite that every bus backend runs
// against a real server: order, durability, consumer groups, start
// positions, the position store, and tests with real OS processes
// (concurrent publisher and consumer, kill -9 of a publisher, takeover of a
// killed group member).
//
// A backend's test package calls Run from a test and Main from TestMain:
//
//	func TestMain(m *testing.M) { bustest.Main(m) }
//	func TestConformance(t *testing.T) { bustest.Run(t, newSpec) }
package bustest
