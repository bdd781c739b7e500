package rendezvous_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
)

// Three ranks publish their addresses, fence, and read their neighbour's.
func Example() {
	ctx := context.Background()
	token := []byte("job secret")
	srv, err := rendezvous.Listen(ctx, "127.0.0.1:0", rendezvous.ServerConfig{Size: 3, Token: token})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	peers := make([]string, 3)
	var wg sync.WaitGroup
	for rank := range 3 {
		wg.Go(func() {
			c, err := rendezvous.Dial(ctx, rendezvous.ClientConfig{Addr: srv.Addr(), Token: token, Rank: rank})
			if err != nil {
				log.Fatal(err)
			}
			defer c.Close()
			if err := c.Set(ctx, fmt.Sprintf("addr/%d", rank), fmt.Appendf(nil, "10.0.0.%d:7000", rank+1)); err != nil {
				log.Fatal(err)
			}
			if err := c.Fence(ctx); err != nil {
				log.Fatal(err)
			}
			next := (rank + 1) % c.Size()
			v, err := c.Get(ctx, fmt.Sprintf("addr/%d", next))
			if err != nil {
				log.Fatal(err)
			}
			peers[rank] = string(v)
		})
	}
	wg.Wait()
	for rank, p := range peers {
		fmt.Printf("rank %d sends to %s\n", rank, p)
	}
	// Output:
	// rank 0 sends to 10.0.0.2:7000
	// rank 1 sends to 10.0.0.3:7000
	// rank 2 sends to 10.0.0.1:7000
}

// MemStore gives goroutine ranks the same Set/Fence/Get without sockets.
func ExampleMemStore() {
	ctx := context.Background()
	m := rendezvous.NewMemStore(2)
	var wg sync.WaitGroup
	got := make([]string, 2)
	for rank := range 2 {
		wg.Go(func() {
			_ = m.Set(ctx, fmt.Sprint(rank), []byte(fmt.Sprint("hello from ", rank)))
			_ = m.Fence(ctx)
			v, _ := m.Get(ctx, fmt.Sprint(1-rank))
			got[rank] = string(v)
		})
	}
	wg.Wait()
	fmt.Println(got[0])
	fmt.Println(got[1])
	// Output:
	// hello from 1
	// hello from 0
}
