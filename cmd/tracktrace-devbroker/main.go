// Command tracktrace-devbroker runs an in-process Kafka-protocol broker
// (franz-go's kfake, the one the tests use) on a local port, to try
// tracktrace's Kafka features without a Kafka cluster. Not for production:
// it keeps everything in memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tracktrace-devbroker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("tracktrace-devbroker", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("bad port %q", portStr)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.ListenFn(func(network, a string) (net.Listener, error) {
		_, p, _ := net.SplitHostPort(a)
		return net.Listen(network, net.JoinHostPort(host, p))
	}), kfake.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("Kafka-protocol broker listening on", c.ListenAddrs())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
