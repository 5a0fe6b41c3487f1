package exporter

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// ClientOptions configures how S3 and STS clients are built.
type ClientOptions struct {
	// Endpoint, when set, is used for every integration (an S3-compatible store).
	Endpoint string
	// PathStyle selects path-style addressing.
	PathStyle bool
	// STSEndpoint overrides the STS endpoint.
	STSEndpoint string
	// DefaultRegion is used before a bucket's region is known (default
	// DefaultRegion).
	DefaultRegion string
	// MaxAttempts is the SDK retryer's attempts per request (default 3).
	MaxAttempts int
	// RetryMaxBackoff caps the SDK retryer's jittered delay between the
	// tries of one request (default the SDK's, 20 s). Tests shorten it, so
	// that a brown-out does not make them wait out whole seconds per retry.
	RetryMaxBackoff time.Duration
	// CredentialExpiryWindow is how long before they expire assumed-role
	// credentials are refreshed (default DefaultCredentialExpiryWindow;
	// tests shorten it to watch a refresh within seconds).
	CredentialExpiryWindow time.Duration
	// OnRetry, when set, is called each time the SDK's retryer sends a
	// request again, with the code of the failure it retries.
	OnRetry func(errcode.Code)
	// MaxSigners bounds the credential sets (sessions and their clients)
	// cached in all (default DefaultMaxSigners); past it the least recently
	// used one is dropped.
	MaxSigners int
	// MaxSignersPerTenant bounds the credential sets one tenant holds in the
	// cache (default DefaultMaxSignersPerTenant); past it that tenant's least
	// recently used one is dropped, so no tenant can push out the others.
	MaxSignersPerTenant int
	// FallbackRegionTTL is how long the default region, used when neither
	// GetBucketLocation nor HeadBucket told a bucket's region, is kept for
	// that bucket before asking again (default DefaultFallbackRegionTTL).
	FallbackRegionTTL time.Duration
	// ResponseTimeout bounds the wait for a request's response headers and
	// a stalled body (default DefaultResponseTimeout; see stall.go).
	ResponseTimeout time.Duration
	// IdleConnsPerHost is how many idle connections to one S3 host are kept
	// for the next requests (default 64). The daemon passes
	// S3EXPORTER_CONCURRENCY, so that a destination running that many
	// uploads does not close and dial connections (and redo TLS handshakes)
	// between them.
	IdleConnsPerHost int
}

// Defaults of the client options that are settings of the daemon too
// (S3EXPORTER_DEFAULT_REGION…): internal/daemon's
// TestPackageDefaultsAreTheSettingsDefaults holds them equal to config.Default's.
const (
	DefaultRegion                 = "us-east-1"
	DefaultCredentialExpiryWindow = time.Minute
	DefaultResponseTimeout        = 60 * time.Second
)

// Cache bounds. A credential set with its S3 clients weighs about 15 KiB per
// region used, so the default bound is some 60 MiB at most.
const (
	DefaultMaxSigners          = 4096
	DefaultMaxSignersPerTenant = 32
	// DefaultFallbackRegionTTL: long enough that a scan's artifacts do not
	// each repeat two denied requests, short enough that a policy fixed by
	// the bucket owner is seen within minutes.
	DefaultFallbackRegionTTL = 10 * time.Minute
	// maxRegionsPerSigner bounds the bucket regions one credential set
	// remembers (one per bucket it writes to).
	maxRegionsPerSigner = 1024
)

// Clients caches, per signer (a tenant and one of its credential sets), the
// credentials provider (assumed-role credentials are refreshed by the SDK's
// cache before they expire), one S3 client per region and each bucket's
// region. Signers are never shared between tenants, even with equal
// credentials (contract v1.1 §2), and live in an LRU bounded in all and per
// tenant: a full cache drops one signer at a time, never all of them (which
// would make every replica re-assume every role at once).
type Clients struct {
	opts ClientOptions
	base aws.Config
	now  func() time.Time

	mu        sync.Mutex
	lru       *list.List               // of *signer, most recently used first
	bySigner  map[string]*list.Element // integration.SigningKey -> element
	perTenant map[string]int           // tenant -> signers cached
}

// signer is one tenant's credential set and what hangs off it.
type signer struct {
	key, tenant string
	provider    aws.CredentialsProvider
	// refreshable is the cache of the credentials that can be fetched
	// again (assumed-role or the exporter's own): a request refused for an
	// expired token invalidates it. Nil for static keys.
	refreshable *aws.CredentialsCache
	renewMu     sync.Mutex // see expiredTokenMiddleware
	// staticToken: static keys with a session token, which nothing can
	// renew; an expired one is the integration's to replace.
	staticToken bool
	clients     map[string]*s3.Client   // region -> client
	regions     map[string]bucketRegion // bucket -> region
}

// bucketRegion is a bucket's region as found, or the default region guessed
// when nothing said it (kept until until).
type bucketRegion struct {
	region  string
	guessed bool
	until   time.Time
}

// NewClients loads the exporter's own AWS configuration (the SDK default
// chain, AWS_CA_BUNDLE and the rest of the standard environment).
func NewClients(ctx context.Context, opts ClientOptions) (*Clients, error) {
	if opts.DefaultRegion == "" {
		opts.DefaultRegion = DefaultRegion
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 3
	}
	if opts.CredentialExpiryWindow <= 0 {
		opts.CredentialExpiryWindow = DefaultCredentialExpiryWindow
	}
	if opts.MaxSigners <= 0 {
		opts.MaxSigners = DefaultMaxSigners
	}
	if opts.MaxSignersPerTenant <= 0 {
		opts.MaxSignersPerTenant = DefaultMaxSignersPerTenant
	}
	if opts.FallbackRegionTTL <= 0 {
		opts.FallbackRegionTTL = DefaultFallbackRegionTTL
	}
	// The HTTP client must stay a *awshttp.BuildableClient so that
	// AWS_CA_BUNDLE keeps working.
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = DefaultResponseTimeout
	}
	if opts.IdleConnsPerHost <= 0 {
		opts.IdleConnsPerHost = 64
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = opts.IdleConnsPerHost
		tr.MaxIdleConns = max(tr.MaxIdleConns, opts.IdleConnsPerHost)
		withResponseTimeout(tr, opts.ResponseTimeout)
	})
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(opts.DefaultRegion),
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryer(func() aws.Retryer {
			std := retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				if opts.RetryMaxBackoff > 0 {
					o.MaxBackoff = opts.RetryMaxBackoff
				}
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
		opts: opts, base: cfg, now: time.Now,
		lru: list.New(), bySigner: map[string]*list.Element{}, perTenant: map[string]int{},
	}, nil
}

// signerOf returns the cached signer of an integration, building it (and
// making room for it) when missing. It holds c.mu.
func (c *Clients) signerOf(ig *integration.Integration) *signer {
	k := ig.SigningKey()
	if el, ok := c.bySigner[k]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*signer)
	}
	if c.perTenant[ig.TenantID] >= c.opts.MaxSignersPerTenant {
		for el := c.lru.Back(); el != nil; el = el.Prev() {
			if el.Value.(*signer).tenant == ig.TenantID {
				c.evict(el)
				break
			}
		}
	}
	for c.lru.Len() >= c.opts.MaxSigners {
		c.evict(c.lru.Back())
	}
	s := c.newSigner(ig, k)
	c.bySigner[k] = c.lru.PushFront(s)
	c.perTenant[ig.TenantID]++
	return s
}

func (c *Clients) evict(el *list.Element) {
	s := c.lru.Remove(el).(*signer)
	delete(c.bySigner, s.key)
	if c.perTenant[s.tenant]--; c.perTenant[s.tenant] <= 0 {
		delete(c.perTenant, s.tenant)
	}
}

func (c *Clients) newSigner(ig *integration.Integration, key string) *signer {
	creds := ig.Credentials
	s := &signer{key: key, tenant: ig.TenantID, clients: map[string]*s3.Client{}, regions: map[string]bucketRegion{}}
	var src aws.CredentialsProvider
	if creds.AccessKeyID != "" {
		src = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(
			creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken))
		s.staticToken = creds.SessionToken != "" && creds.RoleARN == ""
	} else {
		// The exporter's own identity (the Parser has checked that it may
		// be used: a role_arn to assume, or the ambient setting).
		src = c.base.Credentials
		if cc, ok := src.(*aws.CredentialsCache); ok && creds.RoleARN == "" {
			s.refreshable = cc
		}
	}
	s.provider = src
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
		cc := aws.NewCredentialsCache(assumeRoleProvider{ar}, func(o *aws.CredentialsCacheOptions) {
			// Refresh ahead of expiry, so a daemon that runs for weeks
			// never signs with credentials about to lapse.
			o.ExpiryWindow = c.opts.CredentialExpiryWindow
			o.ExpiryWindowJitterFrac = 0.5
		})
		s.provider, s.refreshable = cc, cc
	}
	return s
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signerOf(ig).provider
}

// client returns the cached S3 client of an integration's signer in a region.
func (c *Clients) client(ig *integration.Integration, region string) *s3.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.signerOf(ig)
	if cl, ok := s.clients[region]; ok {
		return cl
	}
	cl := s3.NewFromConfig(c.base, func(o *s3.Options) {
		o.Region = region
		o.Credentials = s.provider
		o.UsePathStyle = c.opts.PathStyle
		if c.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.opts.Endpoint)
		}
		o.APIOptions = append(o.APIOptions, expiredTokenMiddleware(s))
	})
	s.clients[region] = cl
	return cl
}

// Client returns the client for an integration's bucket, in the bucket's
// region (discovered once, then cached), and that region: "" when it is
// not known (neither GetBucketLocation nor HeadBucket told it, and the
// default region is used).
func (c *Clients) Client(ctx context.Context, ig *integration.Integration) (*s3.Client, string, error) {
	c.mu.Lock()
	br, ok := c.signerOf(ig).regions[ig.Bucket]
	c.mu.Unlock()
	if ok && br.guessed && !c.now().Before(br.until) {
		ok = false
	}
	if !ok {
		region, err := c.DiscoverRegion(ctx, ig)
		var expired *credentialsExpiredError
		if errors.As(err, &expired) && expired.renewable {
			// The session was refused as expired and has been dropped:
			// ask once more with a new one, rather than fail every
			// artifact of the delivery for it.
			region, err = c.DiscoverRegion(ctx, ig)
		}
		switch {
		case err == nil:
			br = bucketRegion{region: region}
		case fallsBack(err):
			// The credentials may lack s3:GetBucketLocation; let the
			// upload itself say whether they can write. Remembered for a
			// while, so the artifacts of a scan do not each repeat two
			// denied requests.
			br = bucketRegion{region: c.opts.DefaultRegion, guessed: true, until: c.now().Add(c.opts.FallbackRegionTTL)}
		default:
			return nil, "", err
		}
		c.mu.Lock()
		s := c.signerOf(ig)
		if len(s.regions) >= maxRegionsPerSigner {
			clear(s.regions)
		}
		s.regions[ig.Bucket] = br
		c.mu.Unlock()
	}
	if br.guessed {
		return c.client(ig, br.region), "", nil
	}
	return c.client(ig, br.region), br.region, nil
}

// CachedRegion returns the bucket's region when Client has cached it: ""
// with true while a guessed (default) region is remembered.
func (c *Clients) CachedRegion(ig *integration.Integration) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	br, ok := c.signerOf(ig).regions[ig.Bucket]
	switch {
	case !ok || (br.guessed && !c.now().Before(br.until)):
		return "", false
	case br.guessed:
		return "", true
	}
	return br.region, true
}

// fallsBack reports whether a region-discovery failure leaves the default
// region to try: the bucket's region could not be read, but nothing says
// that writing will fail.
func fallsBack(err error) bool {
	var e *errcode.Error
	return errors.As(err, &e) && (e.Code == errcode.S3BucketAccessDenied || e.Code == errcode.S3ClientError) && !e.Retryable
}

// ForgetRegion drops a cached bucket region (after a redirect says it moved).
func (c *Clients) ForgetRegion(ig *integration.Integration) {
	c.mu.Lock()
	delete(c.signerOf(ig).regions, ig.Bucket)
	c.mu.Unlock()
}

// validRegion is what a region name from an AWS answer must look like
// before it goes into endpoint resolution: the SDK builds host names from
// it, and a bucket owner (or a hostile S3-compatible store) controls it.
var validRegion = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// checkRegion refuses a region name that is not one: S3InvalidBucketRegion,
// permanent. We refuse rather than fall back to the default region: an
// answer like "evil.example.com#" is a store misbehaving or an attack, and
// the operator should see it, not have exports quietly go elsewhere.
func checkRegion(op, region string) (string, error) {
	if !validRegion.MatchString(region) {
		return "", errcode.Permanentf(errcode.S3InvalidBucketRegion,
			"%s answered the bucket region %q, which is not a region name ([a-z0-9-], 1 to 32 characters)", op, truncate(region, 64))
	}
	return region, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DiscoverRegion finds a bucket's region: GetBucketLocation (what the
// documented IAM policy grants), or HeadBucket's x-amz-bucket-region header,
// which S3 also sends on a refused (403) or redirected (301) HeadBucket.
func (c *Clients) DiscoverRegion(ctx context.Context, ig *integration.Integration) (string, error) {
	cl := c.client(ig, c.opts.DefaultRegion)
	out, err := cl.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(ig.Bucket)})
	if err == nil {
		return checkRegion("GetBucketLocation", normalizeRegion(string(out.LocationConstraint)))
	}
	locErr := classify("GetBucketLocation", err)
	switch locErr.Code {
	case errcode.S3BucketNotFound, errcode.AWSInvalidCredentials, errcode.AWSNoCredentials, errcode.AWSAssumeRoleError:
		return "", locErr
	}
	hb, herr := cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(ig.Bucket)})
	if herr == nil && hb.BucketRegion != nil && *hb.BucketRegion != "" {
		return checkRegion("HeadBucket", *hb.BucketRegion)
	}
	if herr == nil {
		// Reachable, but nothing said where: the default region is a
		// guess (remembered for a while, reported as unknown).
		return "", errcode.Permanentf(errcode.S3ClientError, "GetBucketLocation was refused (%v) and HeadBucket answered without x-amz-bucket-region", locErr.Err)
	}
	if r := headerRegion(herr); r != "" {
		return checkRegion("HeadBucket", r)
	}
	if he := classify("HeadBucket", herr); he.Code == errcode.S3BucketNotFound {
		return "", he
	}
	return "", locErr
}

// headerRegion is the x-amz-bucket-region header of a failed request's
// answer ("" when there is none).
func headerRegion(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return strings.TrimSpace(re.Response.Header.Get("X-Amz-Bucket-Region"))
	}
	return ""
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
