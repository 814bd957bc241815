// Command authbench measures what a storm of bad-password CONNECTs costs a
// real server: the process CPU time the storm takes (mostly bcrypt) and the
// latency of a real first login of another account during it. It runs the
// server in-process on loopback, with accounts stored under the production
// hash cost, and prints one line per storm.
//
//	go run ./bench/cmd/authbench [--storms 200,1000] [--conc 8]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/store"
)

func main() {
	storms := flag.String("storms", "200,1000", "storm sizes (bad CONNECTs), comma-separated")
	conc := flag.Int("conc", 8, "concurrent bad CONNECTs")
	flag.Parse()
	if err := run(*storms, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}

func run(storms string, conc int) error {
	dir, err := os.MkdirTemp("", "authbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	mq, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, server.Listeners{MQTT: mq}) }()
	defer func() { cancel(); <-done }()
	<-srv.Ready()
	broker := "tcp://" + mq.Addr().String()

	accounts := 0
	addAccount := func() (string, error) {
		accounts++
		name := fmt.Sprintf("acct%d", accounts)
		h, err := server.HashPassword("pw-" + name)
		if err != nil {
			return "", err
		}
		return name, srv.Store().AddAccount(ctx, store.Account{Name: name, Kind: "person", PassHash: h, Created: time.Now().UnixMilli()})
	}
	// A real first login: a fresh account, so no cache helps.
	login := func() (time.Duration, error) {
		name, err := addAccount()
		if err != nil {
			return 0, err
		}
		start := time.Now()
		err = connect(broker, "127.0.0.1", name, "pw-"+name, name+"-d")
		return time.Since(start), err
	}
	var idle []time.Duration
	for range 5 {
		d, err := login()
		if err != nil {
			return fmt.Errorf("idle login: %w", err)
		}
		idle = append(idle, d)
	}
	fmt.Printf("real first login, idle server: median %v\n", median(idle))

	for _, f := range strings.Split(storms, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("--storms: %w", err)
		}
		for _, spread := range []bool{false, true} {
			victim, err := addAccount()
			if err != nil {
				return err
			}
			cpu0, wall0 := cpuTime(), time.Now()
			stop := make(chan struct{})
			var lat []time.Duration
			var loginErr error
			var lwg sync.WaitGroup
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					d, err := login()
					if err != nil {
						loginErr = err
						return
					}
					lat = append(lat, d)
				}
			}()
			refused := stormOf(broker, victim, n, conc, spread)
			close(stop)
			lwg.Wait()
			stormWall, stormCPU := time.Since(wall0), cpuTime()-cpu0
			if loginErr != nil {
				return fmt.Errorf("login during storm: %w", loginErr)
			}
			from := "one address"
			if spread {
				from = "one address per CONNECT"
			}
			fmt.Printf("storm %5d bad CONNECTs (%s, %d at a time): wall %v, process CPU %v; %v; real login during it: %d done, median %v, max %v\n",
				n, from, conc, stormWall.Round(time.Millisecond), stormCPU.Round(time.Millisecond), refused,
				len(lat), median(lat), slices.Max(append(lat, 0)))
		}
	}
	return nil
}

// stormOf makes n bad-password CONNECTs for account, conc at a time, from
// 127.0.0.2 or (spread) each from an address of its own in 127.1.0.0/16,
// and counts the CONNACK errors.
func stormOf(broker, account string, n, conc int, spread bool) map[string]int {
	var mu sync.Mutex
	got := make(map[string]int)
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ip := "127.0.0.2"
				if spread {
					ip = fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
				}
				err := connect(broker, ip, account, "wrong", fmt.Sprintf("g%d", i))
				mu.Lock()
				got[fmt.Sprint(err)]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return got
}

func connect(broker, ip, user, pass, device string) error {
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(device).
		SetUsername(user).SetPassword(pass).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetConnectTimeout(30 * time.Second).
		SetDialer(&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}})
	c := paho.NewClient(opts)
	tok := c.Connect()
	tok.Wait()
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}

// cpuTime is the user and system CPU time of this process (server and
// clients alike; the clients' share is small next to bcrypt's).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
