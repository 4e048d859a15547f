// Command bucketvault runs and inspects bucketvault backups and restores, locally and on AWS.
// See `bucketvault --help` and statemachine/cli.
package main

import (
	"os"

	"github.com/bucketvault/bucketvault/statemachine/cli"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() { os.Exit(cli.Main(version)) }
