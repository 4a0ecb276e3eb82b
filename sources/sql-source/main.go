// Command sql-source publishes the rows of a PostgreSQL, MySQL, MariaDB or
// SQLite table, or of a query, to a topic: all of them first, then the new
// ones, by polling with an increasing cursor column.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
