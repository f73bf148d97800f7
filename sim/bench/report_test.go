package bench

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestKeptLog(t *testing.T) {
	f, finish, err := keptLog("test")
	if err != nil {
		t.Fatal(err)
	}
	var ok error
	finish(&ok)
	if _, err := os.Stat(f.Name()); !os.IsNotExist(err) || ok != nil {
		t.Fatalf("after a success the log %s is still there (%v) or the error is %v", f.Name(), err, ok)
	}

	f, finish, err = keptLog("test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	failed := errors.New("boom")
	finish(&failed)
	if _, err := os.Stat(f.Name()); err != nil || !strings.Contains(failed.Error(), f.Name()) {
		t.Fatalf("after a failure: log %v, error %q; want the log kept and named", err, failed)
	}
}
