// compose-config loads a compose file with compose-go, the loader Docker Compose itself uses
// (schema validation, interpolation from the environment, merge of anchors and extends,
// normalization, consistency checks), and prints the resulting project as JSON.
//
// Usage: compose-config FILE
//
// The tests in tests/deploy/ run it on docker-compose.yml, where no Docker engine exists.
// (compose-go's own example command loads a model without the environment, so a file with
// required variables cannot be checked with it.)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithConsistency(true))
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-config:", err)
	os.Exit(1)
}
