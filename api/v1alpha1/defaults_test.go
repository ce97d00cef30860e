package v1alpha1

import (
	"slices"
	"testing"
)

// A caller that changes the default it was handed changes nothing for the
// next caller.
func TestDefaultPermissionsAreCopies(t *testing.T) {
	var p PermissionPolicy
	req, forb := p.RequiredOrDefault(), p.ForbiddenOrDefault()
	req[0], forb[0] = "withdraw", "read"
	_ = append(req[:0], "trade")
	if got := p.RequiredOrDefault(); !slices.Equal(got, []Permission{"read"}) {
		t.Fatalf("RequiredOrDefault after a caller's change = %v", got)
	}
	if got := p.ForbiddenOrDefault(); !slices.Equal(got, []Permission{"withdraw"}) {
		t.Fatalf("ForbiddenOrDefault after a caller's change = %v", got)
	}
	d := DefaultForbidden()
	d[0] = "trade"
	if got := DefaultForbidden(); !slices.Equal(got, []Permission{"withdraw"}) {
		t.Fatalf("DefaultForbidden after a caller's change = %v", got)
	}
}
