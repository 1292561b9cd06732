package packaging_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/sterad/sterad/packaging"
)

var debFlag = flag.String("deb", "", "check this .deb (make package) instead of building one")

// entry is one file of the package's data archive.
type entry struct {
	hdr  *tar.Header
	body []byte
}

// deb is a package read back: its control files and its data.
type deb struct {
	path    string
	control map[string][]byte      // control, conffiles, postinst, …
	data    map[string]entry       // by absolute path, "/usr/bin/sterad"
	order   []string               // data paths in archive order
	fields  map[string]string      // of control
	modes   map[string]os.FileMode // of the maintainer scripts
}

// buildDeb builds sterad and its package into a temporary directory, or
// returns -deb's.
func buildDeb(t *testing.T) string {
	t.Helper()
	if *debFlag != "" {
		return *debFlag
	}
	if testing.Short() {
		t.Skip("-short: building sterad and its package takes minutes")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sterad")
	build := exec.Command("go", "build", "-buildmode=pie", "-ldflags", "-s -w -X main.version=v1.2.0", "-o", bin, "./cmd/sterad")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	path, err := packaging.Build(context.Background(), packaging.Options{
		Root: root, Binary: bin, Version: "v1.2.0",
		Date: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC), OutDir: filepath.Join(dir, "dist"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// readDeb reads a .deb with Go alone (ar, then the tar archives).
func readDeb(t *testing.T, path string) *deb {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &deb{path: path, control: map[string][]byte{}, data: map[string]entry{},
		fields: map[string]string{}, modes: map[string]os.FileMode{}}
	if !bytes.HasPrefix(raw, []byte("!<arch>\n")) {
		t.Fatalf("%s is not an ar archive", path)
	}
	rest := raw[8:]
	var members []string
	for len(rest) >= 60 {
		hdr := rest[:60]
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[:16])), "/")
		var size int
		fmt.Sscan(strings.TrimSpace(string(hdr[48:58])), &size)
		body := rest[60 : 60+size]
		rest = rest[60+size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:]
		}
		members = append(members, name)
		switch {
		case name == "debian-binary":
			if string(body) != "2.0\n" {
				t.Errorf("debian-binary = %q", body)
			}
		case strings.HasPrefix(name, "control.tar"):
			readTar(t, name, body, func(h *tar.Header, b []byte) {
				n := strings.TrimPrefix(h.Name, "./")
				d.control[n] = b
				d.modes[n] = h.FileInfo().Mode().Perm()
			})
		case strings.HasPrefix(name, "data.tar"):
			readTar(t, name, body, func(h *tar.Header, b []byte) {
				n := "/" + strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")
				d.data[n] = entry{h, b}
				d.order = append(d.order, n)
			})
		}
	}
	if len(members) != 3 || members[0] != "debian-binary" {
		t.Fatalf("ar members %q, want debian-binary, control.tar.*, data.tar.*", members)
	}
	for _, line := range strings.Split(string(d.control["control"]), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
			d.fields[k] = v
		}
	}
	return d
}

func readTar(t *testing.T, name string, body []byte, f func(*tar.Header, []byte)) {
	t.Helper()
	var r io.Reader
	var err error
	switch filepath.Ext(name) {
	case ".gz":
		r, err = gzip.NewReader(bytes.NewReader(body))
	case ".xz":
		r, err = xz.NewReader(bytes.NewReader(body))
	case ".tar":
		r = bytes.NewReader(body)
	default:
		t.Fatalf("%s: unknown compression", name)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f(h, b)
	}
}

// file returns a regular file of the package, failing if it is missing.
func (d *deb) file(t *testing.T, path string) entry {
	t.Helper()
	e, ok := d.data[path]
	if !ok {
		t.Fatalf("the package has no %s", path)
	}
	return e
}

// unitLines are the settings of the unit, "Key=value" each.
func unitLines(b []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestPackage builds the Debian package and reads it back as dpkg would
// install it: the control fields, the sterad user made by the postinst,
// the conffile, the data directory's mode, the hardened unit, the udev
// rule, the man pages and the binary; then lintian and systemd-analyze
// judge it where they are installed.
func TestPackage(t *testing.T) {
	d := readDeb(t, buildDeb(t))

	t.Run("control", func(t *testing.T) {
		want := map[string]string{"Package": "sterad", "Section": "net", "Priority": "optional"}
		if *debFlag == "" {
			want["Version"] = "1.2.0-1"
		}
		for k, v := range want {
			if d.fields[k] != v {
				t.Errorf("%s: %q, want %q", k, d.fields[k], v)
			}
		}
		for _, dep := range []string{"adduser", "libusb-1.0-0", "libc6"} {
			if !strings.Contains(d.fields["Depends"], dep) {
				t.Errorf("Depends: %q lacks %s", d.fields["Depends"], dep)
			}
		}
	})

	t.Run("postinst creates the sterad user in dialout and plugdev, and no key", func(t *testing.T) {
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			if d.modes[s] != 0o755 {
				t.Errorf("%s: mode %04o, want 0755", s, d.modes[s])
			}
		}
		post := string(d.control["postinst"])
		for _, want := range []string{
			"adduser --quiet --system --group --no-create-home",
			"--home /var/lib/sterad --shell /usr/sbin/nologin",
			"for group in dialout plugdev; do",
			`adduser --quiet sterad "$group"`,
			"dpkg-statoverride --quiet --update --add sterad sterad 0700 /var/lib/sterad",
			"sudo sterad keys init --kek-file /etc/sterad/kek",
		} {
			if !strings.Contains(post, want) {
				t.Errorf("postinst lacks %q", want)
			}
		}
		// The KEK is only ever named in the message to the administrator.
		for i, line := range strings.Split(post, "\n") {
			if regexp.MustCompile(`^\s*(/usr/bin/)?sterad\s+keys`).MatchString(line) {
				t.Errorf("postinst line %d runs %q: the key-encryption key is the administrator's to create", i+1, line)
			}
		}
		if err := exec.Command("sh", "-n", "-c", post).Run(); err != nil {
			t.Errorf("postinst: sh -n: %v", err)
		}
		rm := string(d.control["postrm"])
		if strings.Contains(rm, "rm -rf /var/lib/sterad") || strings.Contains(rm, "deluser") {
			t.Errorf("postrm removes the journal or the user:\n%s", rm)
		}
	})

	t.Run("conffile", func(t *testing.T) {
		if got := strings.Fields(string(d.control["conffiles"])); !slices.Equal(got, []string{"/etc/sterad/sterad.yaml"}) {
			t.Errorf("conffiles = %q, want /etc/sterad/sterad.yaml", got)
		}
		e := d.file(t, "/etc/sterad/sterad.yaml")
		if m := e.hdr.FileInfo().Mode().Perm(); m != 0o644 {
			t.Errorf("/etc/sterad/sterad.yaml: mode %04o", m)
		}
		if !bytes.Contains(e.body, []byte("merchant_id: HOTEL0000000001")) || !bytes.Contains(e.body, []byte("replace it")) {
			t.Errorf("the conffile does not show the placeholder merchant ID to replace")
		}
		if _, ok := d.data["/etc/sterad/kek"]; ok {
			t.Errorf("the package ships a key-encryption key")
		}
	})

	t.Run("data directory 0700", func(t *testing.T) {
		e := d.file(t, "/var/lib/sterad")
		if e.hdr.Typeflag != tar.TypeDir || e.hdr.FileInfo().Mode().Perm() != 0o700 {
			t.Errorf("/var/lib/sterad: type %c mode %04o, want a directory 0700", e.hdr.Typeflag, e.hdr.FileInfo().Mode().Perm())
		}
	})

	t.Run("unit", func(t *testing.T) {
		e := d.file(t, packaging.UnitPath)
		lines := unitLines(e.body)
		for _, want := range []string{
			"ExecStart=/usr/bin/sterad serve --config /etc/sterad/sterad.yaml",
			"User=sterad",
			"SupplementaryGroups=dialout plugdev",
			"StateDirectory=sterad",
			"StateDirectoryMode=0700",
			"LoadCredential=kek:/etc/sterad/kek",
			"NoNewPrivileges=yes",
			"ProtectSystem=strict",
			"ReadWritePaths=/var/lib/sterad",
			"PrivateTmp=yes",
			"ProtectHome=yes",
			"DevicePolicy=closed",
			"DeviceAllow=char-ttyS rw",
			"DeviceAllow=char-ttyUSB rw",
			"DeviceAllow=char-ttyACM rw",
			"DeviceAllow=char-usb_device rw",
			"CapabilityBoundingSet=",
			"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
			"SystemCallFilter=@system-service",
			"Restart=on-failure",
			"LimitCORE=0",
			"WantedBy=multi-user.target",
		} {
			if !slices.Contains(lines, want) {
				t.Errorf("the unit lacks %q", want)
			}
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "DeviceAllow=") && !regexp.MustCompile(`^DeviceAllow=char-(ttyS|ttyUSB|ttyACM|usb_device) rw$`).MatchString(l) {
				t.Errorf("the unit allows a device beyond serial and USB terminals: %s", l)
			}
		}
	})

	t.Run("udev rule", func(t *testing.T) {
		e := d.file(t, packaging.UdevPath)
		want := regexp.MustCompile(`(?m)^SUBSYSTEM=="usb", .*ATTR\{idVendor\}=="1234", ATTR\{idProduct\}=="5678", GROUP="plugdev", MODE="0660"$`)
		if !want.Match(e.body) {
			t.Errorf("the udev rule does not give the handheld 1234:5678 to plugdev 0660:\n%s", e.body)
		}
		if bytes.Contains(e.body, []byte("uaccess")) {
			t.Errorf("the udev rule gives the handheld to whoever sits at the console (uaccess)")
		}
	})

	t.Run("man pages", func(t *testing.T) {
		for _, page := range []string{"sterad", "sterad-serve", "sterad-keys-init", "sterad-version", "sterad-txn-list"} {
			e := d.file(t, packaging.ManDir+"/"+page+".1.gz")
			zr, err := gzip.NewReader(bytes.NewReader(e.body))
			if err != nil {
				t.Fatalf("%s: %v", page, err)
			}
			roff, _ := io.ReadAll(zr)
			name := regexp.MustCompile(`(?m)^\.SH NAME\n` + strings.ReplaceAll(page, "-", `\\?-`) + ` \\?- \S`)
			if !bytes.HasPrefix(roff, []byte(".nh\n.TH \"STERAD\" \"1\"")) || !name.Match(roff) {
				t.Errorf("%s.1.gz is not its man page:\n%.300s", page, roff)
			}
		}
		if _, ok := d.data[packaging.ManDir+"/sterad-man.1.gz"]; ok {
			t.Errorf("the hidden man command has a man page")
		}
	})

	t.Run("binary", func(t *testing.T) {
		e := d.file(t, packaging.BinaryPath)
		if m := e.hdr.FileInfo().Mode().Perm(); m != 0o755 || e.hdr.Uid != 0 {
			t.Errorf("%s: mode %04o uid %d", packaging.BinaryPath, m, e.hdr.Uid)
		}
		if !bytes.HasPrefix(e.body, []byte("\x7fELF")) {
			t.Fatalf("%s is not an ELF binary", packaging.BinaryPath)
		}
		bin := filepath.Join(t.TempDir(), "sterad")
		if err := os.WriteFile(bin, e.body, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "go1.") {
			t.Errorf("sterad version: %v\n%s", err, out)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		if _, err := exec.LookPath("lintian"); err != nil {
			t.Skip("lintian is not installed (make package installs it)")
		}
		// The overrides the package ships are honoured; any other error
		// or warning fails.
		out, err := exec.Command("lintian", "--fail-on", "error,warning", "--display-info", d.path).CombinedOutput()
		t.Logf("lintian:\n%s", out)
		if err != nil {
			t.Errorf("lintian: %v", err)
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze is not installed (make package installs systemd)")
		}
		dir := t.TempDir()
		bin := filepath.Join(dir, "sterad")
		if err := os.WriteFile(bin, d.file(t, packaging.BinaryPath).body, 0o755); err != nil {
			t.Fatal(err)
		}
		// verify checks that ExecStart's binary exists: point it at the
		// package's own, extracted here.
		unit := bytes.ReplaceAll(d.file(t, packaging.UnitPath).body, []byte("ExecStart=/usr/bin/sterad "), []byte("ExecStart="+bin+" "))
		path := filepath.Join(dir, "sterad.service")
		if err := os.WriteFile(path, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// The exposure systemd computes from the hardening (0 best, 10
		// worst): 1.5 with the network, the terminals' devices and their
		// groups, which the daemon needs.
		out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
		} else if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out); m != nil {
			t.Logf("systemd-analyze security: exposure %s", m[1])
		}
	})
}

// TestDebianVersion: the version of the package, from `git describe`.
func TestDebianVersion(t *testing.T) {
	date := time.Date(2026, 4, 1, 23, 30, 0, 0, time.UTC)
	for _, tc := range []struct{ in, want string }{
		{"v1.2.0", "1.2.0-1"},
		{"1.2.0", "1.2.0-1"},
		{"v1.2.0-3-gabc1234", "1.2.0+git3.abc1234-1"},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0+git3.abc1234+dirty-1"},
		{"v1.2.0-dirty", "1.2.0+dirty-1"},
		{"abc1234", "0~git20260401.abc1234-1"},
		{"abc1234-dirty", "0~git20260401.abc1234+dirty-1"},
		{"", ""},
		{"dev", ""},
		{"release-1", ""},
	} {
		got, err := packaging.DebianVersion(tc.in, date)
		if tc.want == "" {
			if err == nil {
				t.Errorf("DebianVersion(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DebianVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
