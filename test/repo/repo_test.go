// Package repo checks the repository itself: only source goes into git.
package repo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxTrackedSize is the largest file the repository may track. Larger
// files are build outputs or data that belong elsewhere; a file that truly
// needs more goes in allowedLarge with the reason.
const maxTrackedSize = 1 << 20

// allowedLarge lists tracked files allowed over maxTrackedSize, with why.
var allowedLarge = map[string]string{}

// executableMagic are the first bytes of compiled executables and object
// files: ELF, Mach-O (32/64-bit, both byte orders, universal), PE/COFF, wasm.
var executableMagic = [][]byte{
	{0x7f, 'E', 'L', 'F'},
	{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf},
	{0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe},
	{0xca, 0xfe, 0xba, 0xbe},
	{'M', 'Z'},
	{0x00, 'a', 's', 'm'},
}

// TestTrackedFilesAreSource fails when git tracks an executable binary or a
// file larger than maxTrackedSize (a committed 75 MB benchmark binary once
// made up most of the repository's pack).
func TestTrackedFilesAreSource(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v (the check needs a git checkout)", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 10 {
		t.Fatalf("git ls-files listed %d files; expected the repository", len(files))
	}
	for _, f := range files {
		if problem := checkFile(filepath.Join(root, f)); problem != "" {
			if _, ok := allowedLarge[f]; ok && !strings.Contains(problem, "executable") {
				continue
			}
			t.Errorf("%s: %s", f, problem)
		}
	}
}

// checkFile says what is wrong with a tracked file, or "".
func checkFile(path string) string {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "" // deleted in the work tree, or a symlink
	}
	if fi.Size() > maxTrackedSize {
		return "larger than 1 MiB: build outputs and data do not belong in git (.gitignore), or list it in allowedLarge with the reason"
	}
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	for _, m := range executableMagic {
		if n >= len(m) && bytes.Equal(head[:len(m)], m) {
			return "an executable or object file: build outputs do not belong in git (.gitignore)"
		}
	}
	return ""
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

// TestCheckFileFindsBinaries keeps the check honest: it must flag an ELF
// file and a large file, and pass a source file.
func TestCheckFileFindsBinaries(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got := checkFile(self); got == "" {
		t.Errorf("the test binary itself was not flagged")
	}
	if got := checkFile(write("elf", append([]byte{0x7f, 'E', 'L', 'F'}, make([]byte, 100)...))); !strings.Contains(got, "executable") {
		t.Errorf("ELF file: %q", got)
	}
	if got := checkFile(write("big.txt", bytes.Repeat([]byte("a"), maxTrackedSize+1))); !strings.Contains(got, "1 MiB") {
		t.Errorf("large file: %q", got)
	}
	if got := checkFile(write("main.go", []byte("package main\n"))); got != "" {
		t.Errorf("source file flagged: %q", got)
	}
}
