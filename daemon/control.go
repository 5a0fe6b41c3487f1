package daemon

import (
	"github.com/prowler-cloud/s3-exporter/integration"
)

// startControl subscribes the control subjects (contract §7).
func (d *Daemon) startControl() error { return nil }

// onIntegrationChange reacts to a live integration change.
func (d *Daemon) onIntegrationChange(ch integration.Change, err error) {
	d.reporter.RefreshIntegrations()
}
