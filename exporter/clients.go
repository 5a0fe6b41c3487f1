package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/integration"
)

// ClientOptions configures how S3 and STS clients are built.
type ClientOptions struct {
	// Endpoint, when set, is used for every integration (an S3-compatible store).
	Endpoint string
	// PathStyle selects path-style addressing.
	PathStyle bool
	// STSEndpoint overrides the STS endpoint.
	STSEndpoint string
	// DefaultRegion is used before a bucket's region is known.
	DefaultRegion string
	// MaxAttempts is the SDK retryer's attempts per request (default 3).
	MaxAttempts int
	// CredentialExpiryWindow is how long before they expire assumed-role
	// credentials are refreshed (default DefaultCredentialExpiryWindow;
	// tests shorten it to watch a refresh within seconds).
	CredentialExpiryWindow time.Duration
	// OnRetry, when set, is called each time the SDK's retryer sends a
	// request again, with the code of the failure it retries.
	OnRetry func(errcode.Code)
	// ResponseTimeout bounds the wait for a request's response headers and
	// a stalled body (default DefaultResponseTimeout; see stall.go).
	ResponseTimeout time.Duration
}

// DefaultCredentialExpiryWindow is how long before their expiry assumed-role
// credentials are refreshed, so that a request is never signed with
// credentials about to lapse.
const DefaultCredentialExpiryWindow = time.Minute

// Clients builds one S3 client per credential set and region, and caches
// them, their credential providers (assumed-role credentials are refreshed by
// the SDK's cache before they expire) and each bucket's region.
type Clients struct {
	opts ClientOptions
	base aws.Config

	mu        sync.Mutex
	providers map[string]aws.CredentialsProvider // credential-set key
	clients   map[string]*s3.Client              // credential-set key + region
	regions   map[string]string                  // credential-set key + bucket
}

// maxCached bounds the caches; past it they are emptied and rebuilt on demand.
const maxCached = 50_000

// NewClients loads the exporter's own AWS configuration (the SDK default
// chain, AWS_CA_BUNDLE and the rest of the standard environment).
func NewClients(ctx context.Context, opts ClientOptions) (*Clients, error) {
	if opts.DefaultRegion == "" {
		opts.DefaultRegion = "us-east-1"
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 3
	}
	if opts.CredentialExpiryWindow <= 0 {
		opts.CredentialExpiryWindow = DefaultCredentialExpiryWindow
	}
	// The HTTP client must stay a *awshttp.BuildableClient so that
	// AWS_CA_BUNDLE keeps working.
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = DefaultResponseTimeout
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 64
		withResponseTimeout(tr, opts.ResponseTimeout)
	})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(opts.DefaultRegion),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			std := retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				// No answer within ResponseTimeout: trying twice more
				// would wait three times as long (stall.go).
				o.Retryables = append([]retry.IsErrorRetryable{noRetryWithoutResponse}, o.Retryables...)
			})
			if opts.OnRetry == nil {
				return std
			}
			return &countingRetryer{RetryerV2: std, onRetry: opts.OnRetry}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return &Clients{
		opts: opts, base: cfg,
		providers: map[string]aws.CredentialsProvider{},
		clients:   map[string]*s3.Client{},
		regions:   map[string]string{},
	}, nil
}

// credKey identifies a credential set without holding its secrets in clear.
func credKey(c event.Credentials) string {
	h := sha256.New()
	for _, f := range []string{c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.RoleARN, c.ExternalID,
		c.RoleSessionName, fmt.Sprint(c.SessionDuration)} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// provider returns the cached credentials provider of a credential set.
func (c *Clients) provider(creds event.Credentials) aws.CredentialsProvider {
	k := credKey(creds)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.providers[k]; ok {
		return p
	}
	if len(c.providers) > maxCached {
		clear(c.providers)
	}
	var src aws.CredentialsProvider = c.base.Credentials
	if creds.AccessKeyID != "" {
		src = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(
			creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken))
	}
	p := src
	if creds.RoleARN != "" {
		stsClient := sts.NewFromConfig(c.base, func(o *sts.Options) {
			o.Credentials = src
			if c.opts.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(c.opts.STSEndpoint)
			}
		})
		ar := stscreds.NewAssumeRoleProvider(stsClient, creds.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.ExternalID = aws.String(creds.ExternalID)
			o.RoleSessionName = creds.RoleSessionName
			o.Duration = time.Duration(creds.SessionDuration) * time.Second
		})
		p = aws.NewCredentialsCache(assumeRoleProvider{ar}, func(o *aws.CredentialsCacheOptions) {
			// Refresh ahead of expiry, so a daemon that runs for weeks
			// never signs with credentials about to lapse.
			o.ExpiryWindow = c.opts.CredentialExpiryWindow
			o.ExpiryWindowJitterFrac = 0.5
		})
	}
	c.providers[k] = p
	return p
}

// assumeRoleProvider marks its errors as assume-role failures.
type assumeRoleProvider struct{ p aws.CredentialsProvider }

func (a assumeRoleProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := a.p.Retrieve(ctx)
	if err != nil {
		return cr, &assumeRoleError{err: err}
	}
	return cr, nil
}

// Credentials returns the provider of an integration's credentials.
func (c *Clients) Credentials(ig *integration.Integration) aws.CredentialsProvider {
	return c.provider(ig.Credentials)
}

// client returns the cached S3 client of a credential set in a region.
func (c *Clients) client(creds event.Credentials, region string) *s3.Client {
	p := c.provider(creds)
	k := credKey(creds) + "/" + region
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[k]; ok {
		return cl
	}
	if len(c.clients) > maxCached {
		clear(c.clients)
	}
	cl := s3.NewFromConfig(c.base, func(o *s3.Options) {
		o.Region = region
		o.Credentials = p
		o.UsePathStyle = c.opts.PathStyle
		if c.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.opts.Endpoint)
		}
	})
	c.clients[k] = cl
	return cl
}

// Client returns the client for an integration's bucket, in the bucket's
// region (discovered once, then cached).
func (c *Clients) Client(ctx context.Context, ig *integration.Integration) (*s3.Client, string, error) {
	rk := credKey(ig.Credentials) + "/" + ig.Bucket
	c.mu.Lock()
	region, ok := c.regions[rk]
	c.mu.Unlock()
	if !ok {
		var err error
		region, err = c.DiscoverRegion(ctx, ig)
		if err != nil {
			var e *errcode.Error
			if errors.As(err, &e) && (e.Code == errcode.S3BucketAccessDenied || e.Code == errcode.S3ClientError) && !e.Retryable {
				// The credentials may lack s3:GetBucketLocation; let the
				// upload itself say whether they can write.
				region = c.opts.DefaultRegion
			} else {
				return nil, "", err
			}
		} else {
			c.mu.Lock()
			if len(c.regions) > maxCached {
				clear(c.regions)
			}
			c.regions[rk] = region
			c.mu.Unlock()
		}
	}
	return c.client(ig.Credentials, region), region, nil
}

// ForgetRegion drops a cached bucket region (after a redirect says it moved).
func (c *Clients) ForgetRegion(ig *integration.Integration) {
	c.mu.Lock()
	delete(c.regions, credKey(ig.Credentials)+"/"+ig.Bucket)
	c.mu.Unlock()
}

// DiscoverRegion finds a bucket's region: GetBucketLocation (what the
// documented IAM policy grants), or HeadBucket's x-amz-bucket-region header.
func (c *Clients) DiscoverRegion(ctx context.Context, ig *integration.Integration) (string, error) {
	cl := c.client(ig.Credentials, c.opts.DefaultRegion)
	out, err := cl.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(ig.Bucket)})
	if err == nil {
		return normalizeRegion(string(out.LocationConstraint)), nil
	}
	locErr := classify("GetBucketLocation", err)
	switch locErr.Code {
	case errcode.S3BucketNotFound, errcode.AWSInvalidCredentials, errcode.AWSNoCredentials, errcode.AWSAssumeRoleError:
		return "", locErr
	}
	hb, herr := cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(ig.Bucket)})
	if herr == nil && hb.BucketRegion != nil && *hb.BucketRegion != "" {
		return *hb.BucketRegion, nil
	}
	if herr == nil {
		return c.opts.DefaultRegion, nil
	}
	if he := classify("HeadBucket", herr); he.Code == errcode.S3BucketNotFound {
		return "", he
	}
	return "", locErr
}

func normalizeRegion(loc string) string {
	switch strings.TrimSpace(loc) {
	case "":
		return "us-east-1"
	case "EU":
		return "eu-west-1"
	}
	return loc
}

// countingRetryer reports each retry the SDK decides on: the SDK's own
// retries stay inside one upload attempt, out of the exporter's sight.
type countingRetryer struct {
	aws.RetryerV2
	onRetry func(errcode.Code)
}

// RetryDelay is called once the retryer has decided to retry a request.
func (r *countingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	r.onRetry(classify("", err).Code)
	return r.RetryerV2.RetryDelay(attempt, err)
}
