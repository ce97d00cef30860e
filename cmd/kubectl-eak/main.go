// Command kubectl-eak is the `kubectl eak` plugin for exchange-key-operator:
// put it on the PATH and run `kubectl eak --help`. The commands are in
// internal/cli.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/keyops-io/exchange-key-operator/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
