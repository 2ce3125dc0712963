package ipt

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// contextLines is how many input lines RestoreError keeps on each side of the
// failing line.
const contextLines = 2

// RestoreError is a failed iptables-restore or ipset restore: which line of
// the input failed, and the input around it.
type RestoreError struct {
	Command string   // e.g. "iptables-nft-restore -w --noflush"
	Line    int      // 1-based failing input line; 0 when stderr named none
	Context []string // the failing line and its neighbours, as "N: text"
	Stderr  string
	Err     error // the *ExecError
}

func (e *RestoreError) Error() string {
	msg := fmt.Sprintf("%s failed", e.Command)
	if e.Line > 0 {
		msg += fmt.Sprintf(" at line %d", e.Line)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + strings.Join(strings.Fields(s), " ")
	}
	if len(e.Context) > 0 {
		msg += "; input: " + strings.Join(e.Context, " | ")
	}
	return msg
}

func (e *RestoreError) Unwrap() error { return e.Err }

// lineRes find the failing line in the stderr of
// iptables-restore ("line 2 failed", "Error occurred at line: 5") and
// ipset restore ("Error in line 3:").
var lineRes = []*regexp.Regexp{
	regexp.MustCompile(`line (\d+) failed`),
	regexp.MustCompile(`Error occurred at line: (\d+)`),
	regexp.MustCompile(`Error in line (\d+)`),
}

// failedLine returns the line number stderr names, or 0.
func failedLine(stderr string) int {
	for _, re := range lineRes {
		if m := re.FindStringSubmatch(stderr); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil {
				return n
			}
		}
	}
	return 0
}

// asRestoreError turns the *ExecError of a restore into a *RestoreError
// carrying the failing line of input; other errors pass through.
func asRestoreError(err error, input []byte) error {
	var ee *ExecError
	if !errors.As(err, &ee) {
		return err
	}
	re := &RestoreError{Command: ee.Command, Stderr: ee.Stderr, Err: ee}
	re.Line = failedLine(ee.Stderr)
	if re.Line > 0 {
		lines := strings.Split(strings.TrimSuffix(string(input), "\n"), "\n")
		lo, hi := max(re.Line-contextLines, 1), min(re.Line+contextLines, len(lines))
		for n := lo; n <= hi; n++ {
			re.Context = append(re.Context, fmt.Sprintf("%d: %s", n, lines[n-1]))
		}
	}
	return re
}
