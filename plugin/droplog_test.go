package plugin

import (
	"testing"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/policy"
)

// TestDropLogOverDefaults: the netconf's dropLog fields replace the
// defaults one by one; rate 0 (off) is kept, not taken for "unset".
func TestDropLogOverDefaults(t *testing.T) {
	nc, err := conf.Parse([]byte(`{"cniVersion":"1.0.0","type":"netpol","dropLog":{"group":7,"rate":0}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	want := policy.DefaultDropLog()
	want.Group, want.Rate = 7, 0
	if got := dropLog(nc); got != want {
		t.Errorf("dropLog = %+v, want %+v", got, want)
	}
	nc, _ = conf.Parse([]byte(`{"cniVersion":"1.0.0","type":"netpol"}`), false)
	if got := dropLog(nc); got != policy.DefaultDropLog() {
		t.Errorf("no dropLog: %+v, want the defaults", got)
	}
}
