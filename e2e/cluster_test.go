package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftlabs/weft/storetest"
)

// TestClusterNodeKilledMidIndex runs two nodes on one PostgreSQL: node A
// starts indexing and is killed with SIGKILL; node B, with no other
// coordination than the job table, takes the job over when A's lease runs
// out and finishes the catalog; both nodes then answer searches identically.
func TestClusterNodeKilledMidIndex(t *testing.T) {
	db := storetest.FreshPostgres(t)
	const n = 200
	files := clothingImages(t, n)
	host := imageHost(t, files, 20*time.Millisecond)

	addrA, addrB := freeAddr(t), freeAddr(t)
	dataA, dataB := t.TempDir(), t.TempDir()
	nodeA := startServer(t, dataA, addrA, "--db", db, "--fetch-concurrency", "4")

	cmd := exec.Command(binary, "keys", "create", "--db", db, "--name", "cluster")
	cmd.Env = env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create --db: %v", err)
	}
	key, secret := parseKey(t, out)
	a := &client{t: t, base: "http://" + addrA}
	a.token = a.form("POST", "/v0/token", url.Values{"api_key": {key}, "api_secret": {secret}})["access_token"].(string)

	id, _ := a.indexUntil("cluster", host.URL, n, n/5)

	nodeB := startServer(t, dataB, addrB, "--db", db, "--fetch-concurrency", "4")
	b := &client{t: t, base: "http://" + addrB, token: a.token} // any node answers any request
	if got := b.catalog(id)["catalog_id"]; got != id {
		t.Fatalf("node B sees catalog %v, want %s", got, id)
	}
	nodeA.cmd.Process.Signal(syscall.SIGKILL)
	nodeA.cmd.Wait()

	cat := b.waitFor(id, 3*time.Minute, func(c map[string]any) bool { return c["status"] == "ready for query" })
	if num(cat, "num_images_indexed") != n || num(cat, "num_total_images") != n {
		t.Fatalf("node B finished with %v, want all %d images indexed", cat, n)
	}
	if !strings.Contains(nodeB.log.String(), "index job") {
		t.Errorf("node B's log does not show it running the job:\n%s", nodeB.log.String())
	}

	startServer(t, dataA, addrA, "--db", db)
	body, _ := os.ReadFile(files[3])
	fields := map[string]string{"catalog_id": id, "n_results": "20"}
	fromA := a.file("/v0/search", "image", "q.jpg", body, fields)["similars"]
	fromB := b.file("/v0/search", "image", "q.jpg", body, fields)["similars"]
	if !reflect.DeepEqual(fromA, fromB) {
		t.Fatalf("nodes answer differently:\nA %v\nB %v", fromA, fromB)
	}
	if top := fromA.([]any)[0].(map[string]any); top["iid"] != "3" {
		t.Errorf("top hit %v, want the query image itself (iid 3)", top)
	}
}
