package e2e

import "github.com/prowler-cloud/s3-exporter/client"

type (
	testutilStatus = client.Status
	clientFile     = client.File
)
