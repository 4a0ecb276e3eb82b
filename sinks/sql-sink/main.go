// Command sql-sink writes the records of a topic as rows of a PostgreSQL,
// MySQL/MariaDB or SQLite table.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
