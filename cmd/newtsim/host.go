package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/nic/pcap"
	"github.com/newtsim/newtsim/nic/tap"
	"github.com/newtsim/newtsim/sim/host"
	"github.com/newtsim/newtsim/sim/netns"
)

// NewHostCommand returns `newtsim host`: a simulated host with its whole
// stack in one process, behind a TAP device in a namespace of its own, for
// Linux programs to talk to.
func NewHostCommand() *cobra.Command {
	var addr, peer, pcapPath string
	var echo uint16
	var tso bool
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Run a simulated host (ip and udp linked in one process) behind a TAP device in a new namespace",
		Example: `  sudo newtsim host
  sudo newtsim host --addr 198.18.0.2/24 --echo-port 7 --pcap host.pcap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			a, err := netip.ParsePrefix(addr)
			if err != nil {
				return fmt.Errorf("--addr: %w", err)
			}
			ns, err := netns.New("newtsim-")
			if err != nil {
				return err
			}
			defer ns.Close()
			dev, err := tap.Open("ntstap%d", tso)
			if err != nil {
				return err
			}
			defer dev.Close()
			if err := ns.Adopt(dev.Name(), peer); err != nil {
				return err
			}
			var pw *pcap.Writer
			if pcapPath != "" {
				if pw, err = pcap.Create(pcapPath); err != nil {
					return err
				}
				defer pw.Close()
			}
			h, err := host.New(host.Config{MAC: [6]byte{0x02, 0, 0x5e, 0, 0, 2}, Addr: a, EchoPort: echo, Pcap: pw, TSO: dev.TSO()}, dev.Write)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "host %s behind %s in namespace %s (Linux side %s)\n", a.Addr(), dev.Name(), ns.Name, peer)
			fmt.Fprintf(out, "  ping it:     ip netns exec %s ping %s\n", ns.Name, a.Addr())
			if echo != 0 {
				fmt.Fprintf(out, "  UDP echo:    echo hi | ip netns exec %s nc -u -w1 %s %d\n", ns.Name, a.Addr(), echo)
			}
			if pcapPath != "" {
				fmt.Fprintf(out, "  capture:     %s (tshark -r %s)\n", pcapPath, pcapPath)
			}
			fmt.Fprintln(out, "Ctrl-C stops it and removes the namespace")
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := host.Serve(ctx, h, dev); err != nil && ctx.Err() == nil {
				return err
			}
			fmt.Fprintf(out, "stopped; drops: %v\n", h.Drops())
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "198.18.0.2/24", "the host's address and subnet")
	cmd.Flags().StringVar(&peer, "peer", "198.18.0.1/24", "Linux's address in the namespace")
	cmd.Flags().Uint16Var(&echo, "echo-port", 7, "UDP echo service port (0: none)")
	cmd.Flags().StringVar(&pcapPath, "pcap", "", "write every frame the host sends and receives to this pcap file")
	cmd.Flags().BoolVar(&tso, "tso", true, "TCP segmentation offload on the TAP: Linux cuts the host's TCP segments of up to 64 KiB (docs/PACKET_PATH.md)")
	return needingRoot(cmd)
}
