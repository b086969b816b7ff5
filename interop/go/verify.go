// Command verify cross-checks Ketenpoort's audit log artefacts with Go's reference
// implementations, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, unchanged:
//
//   - the checkpoint opens with note.Open under the pinned verifier keys;
//   - every receipt (C2SP tlog-proof text + entry bytes) passes tlog.CheckRecord;
//   - every consistency proof (older signed checkpoint + proof file) passes tlog.CheckTree;
//   - optionally, the stored hashes equal tlog.StoredHashes for every leaf, in Go's layout,
//     and tlog.TreeHash gives the checkpoint's root.
//
// Usage (GOPATH mode, with Debian's golang-golang-x-mod-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run verify.go \
//	    -vkey FILE -checkpoint FILE [-receipt PROOF:ENTRY]... [-consistency OLDCP:PROOF]... \
//	    [-leaves FILE -stored FILE]
//
// It prints one line per check and exits 1 on the first failure.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func main() {
	var receipts, consistency, vkeyFiles multi
	flag.Var(&vkeyFiles, "vkey", "file with a pinned verifier key (repeatable)")
	cpFile := flag.String("checkpoint", "", "file with the latest signed checkpoint")
	flag.Var(&receipts, "receipt", "PROOF:ENTRY, a tlog-proof file and the entry's raw bytes (repeatable)")
	flag.Var(&consistency, "consistency", "OLDCP:PROOF, an older signed checkpoint and the base64 proof to -checkpoint (repeatable)")
	leavesFile := flag.String("leaves", "", "file with every entry, base64, one per line")
	storedFile := flag.String("stored", "", "file with every stored hash in storage order, base64, one per line")
	flag.Parse()

	var vs []note.Verifier
	for _, f := range vkeyFiles {
		v, err := note.NewVerifier(strings.TrimSpace(string(mustRead(f))))
		check(err, "parse verifier key "+f)
		vs = append(vs, v)
	}
	verifiers := note.VerifierList(vs...)

	latest, err := openCheckpoint(mustRead(*cpFile), verifiers)
	check(err, "open checkpoint "+*cpFile)
	fmt.Printf("ok checkpoint %s size %d\n", latest.origin, latest.size)

	for _, r := range receipts {
		proofFile, entryFile, ok := strings.Cut(r, ":")
		if !ok {
			fail("bad -receipt " + r)
		}
		index, hashes, signed, err := parseTlogProof(mustRead(proofFile))
		check(err, "parse tlog-proof "+proofFile)
		cp, err := openCheckpoint(signed, verifiers)
		check(err, "open receipt checkpoint "+proofFile)
		leaf := tlog.RecordHash(mustRead(entryFile))
		check(tlog.CheckRecord(hashes, cp.size, cp.root, index, leaf), "CheckRecord "+proofFile)
		fmt.Printf("ok receipt index %d in size %d\n", index, cp.size)
	}

	for _, c := range consistency {
		oldFile, proofFile, ok := strings.Cut(c, ":")
		if !ok {
			fail("bad -consistency " + c)
		}
		old, err := openCheckpoint(mustRead(oldFile), verifiers)
		check(err, "open old checkpoint "+oldFile)
		proof, err := parseHashes(mustRead(proofFile))
		check(err, "parse proof "+proofFile)
		check(tlog.CheckTree(proof, latest.size, latest.root, old.size, old.root), "CheckTree "+proofFile)
		fmt.Printf("ok consistency %d -> %d\n", old.size, latest.size)
	}

	if *leavesFile != "" {
		leaves, err := parseLines(mustRead(*leavesFile))
		check(err, "parse leaves")
		stored, err := parseHashes(mustRead(*storedFile))
		check(err, "parse stored hashes")
		var ours []tlog.Hash
		reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(indexes))
			for i, x := range indexes {
				if x >= int64(len(ours)) {
					return nil, errors.New("hash not yet stored")
				}
				out[i] = ours[x]
			}
			return out, nil
		})
		for n, leaf := range leaves {
			hs, err := tlog.StoredHashes(int64(n), leaf, reader)
			check(err, "StoredHashes")
			ours = append(ours, hs...)
		}
		if len(ours) != len(stored) {
			fail(fmt.Sprintf("stored hash count: Go %d, Ketenpoort %d", len(ours), len(stored)))
		}
		for i := range ours {
			if ours[i] != stored[i] {
				fail(fmt.Sprintf("stored hash %d differs", i))
			}
		}
		th, err := tlog.TreeHash(int64(len(leaves)), reader)
		check(err, "TreeHash")
		if int64(len(leaves)) == latest.size && th != latest.root {
			fail("TreeHash differs from the checkpoint root")
		}
		fmt.Printf("ok stored hashes: %d hashes for %d leaves match tlog.StoredHashes\n", len(ours), len(leaves))
	}
	fmt.Println("ALL OK")
}

// openCheckpoint verifies a signed checkpoint with note.Open and parses its body by hand
// (tlog.ParseTree expects the go.sum tree header).
func openCheckpoint(msg []byte, verifiers note.Verifiers) (checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return checkpoint{}, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, errors.New("short checkpoint")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return checkpoint{}, err
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, err
	}
	signedByOrigin := false
	for _, s := range n.Sigs {
		if s.Name == lines[0] {
			signedByOrigin = true
		}
	}
	if !signedByOrigin {
		return checkpoint{}, errors.New("not signed by a key named after the origin")
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

// parseTlogProof parses c2sp.org/tlog-proof@v1 text.
func parseTlogProof(data []byte) (int64, tlog.RecordProof, []byte, error) {
	head, signed, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, errors.New("no empty line")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return 0, nil, nil, errors.New("bad header")
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return 0, nil, nil, errors.New("no index")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		return 0, nil, nil, err
	}
	var proof tlog.RecordProof
	for _, l := range lines[1:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return 0, nil, nil, err
		}
		proof = append(proof, h)
	}
	return index, proof, signed, nil
}

func parseLines(data []byte) ([][]byte, error) {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		b, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

func parseHashes(data []byte) ([]tlog.Hash, error) {
	var out []tlog.Hash
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if l == "" {
			continue
		}
		h, err := tlog.ParseHash(l)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	check(err, "read "+path)
	return b
}

func check(err error, what string) {
	if err != nil {
		fail(what + ": " + err.Error())
	}
}

func fail(msg string) {
	fmt.Println("FAIL " + msg)
	os.Exit(1)
}
