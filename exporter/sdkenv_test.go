package exporter

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// What docs/operations.md says about the AWS SDK's environment: the
// exporter's S3EXPORTER_DEFAULT_REGION wins over AWS_REGION (an explicit
// option of the SDK's loader beats its environment), and the FIPS, dual-stack
// and checksum variables reach every S3 client the exporter builds.
func TestSDKEnvironmentReachesTheClients(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-north-1")
	t.Setenv("AWS_USE_FIPS_ENDPOINT", "true")
	t.Setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
	t.Setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
	c, err := NewClients(context.Background(), ClientOptions{DefaultRegion: "ap-southeast-2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.base.Region != "ap-southeast-2" {
		t.Errorf("region %q: S3EXPORTER_DEFAULT_REGION should win over AWS_REGION", c.base.Region)
	}
	o := c.client(staticIG("t", "i", "b"), "us-west-2").Options()
	if o.EndpointOptions.UseFIPSEndpoint != aws.FIPSEndpointStateEnabled {
		t.Errorf("AWS_USE_FIPS_ENDPOINT did not reach the S3 client: %v", o.EndpointOptions.UseFIPSEndpoint)
	}
	if o.EndpointOptions.UseDualStackEndpoint != aws.DualStackEndpointStateEnabled {
		t.Errorf("AWS_USE_DUALSTACK_ENDPOINT did not reach the S3 client: %v", o.EndpointOptions.UseDualStackEndpoint)
	}
	if o.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired {
		t.Errorf("AWS_REQUEST_CHECKSUM_CALCULATION did not reach the S3 client: %v", o.RequestChecksumCalculation)
	}
	if o.Region != "us-west-2" {
		t.Errorf("the bucket's region %q, want us-west-2", o.Region)
	}
}
