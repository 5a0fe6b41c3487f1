package source

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The exporter's own identity reads sources through readAPI only: the
// interface holds read operations and nothing else, so no code path of
// the source package can write with that identity.
func TestReadAPIOnlyReads(t *testing.T) {
	t.Parallel()
	var got []string
	rt := reflect.TypeFor[readAPI]()
	for i := range rt.NumMethod() {
		got = append(got, rt.Method(i).Name)
	}
	slices.Sort(got)
	if want := []string{"GetBucketLocation", "GetObject", "HeadBucket", "HeadObject"}; !slices.Equal(got, want) {
		t.Errorf("readAPI has %v, want only the reads %v", got, want)
	}
}

// fakeRead answers the location calls as told and records the regions
// clients were built for.
type fakeRead struct {
	readAPI
	location   func() (string, error)
	headRegion string
	mu         *sync.Mutex
	asked      *[]string
}

func (f fakeRead) GetBucketLocation(context.Context, *s3.GetBucketLocationInput, ...func(*s3.Options)) (*s3.GetBucketLocationOutput, error) {
	f.mu.Lock()
	*f.asked = append(*f.asked, "GetBucketLocation")
	f.mu.Unlock()
	loc, err := f.location()
	if err != nil {
		return nil, err
	}
	return &s3.GetBucketLocationOutput{LocationConstraint: types.BucketLocationConstraint(loc)}, nil
}

func (f fakeRead) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	f.mu.Lock()
	*f.asked = append(*f.asked, "HeadBucket")
	f.mu.Unlock()
	if f.headRegion == "" {
		return nil, errors.New("refused")
	}
	return &s3.HeadBucketOutput{BucketRegion: aws.String(f.headRegion)}, nil
}

// The bucket's region is found as a destination's: GetBucketLocation
// ("" is us-east-1, "EU" eu-west-1), else HeadBucket's region, else the
// default region, which is not remembered (asked again next time).
func TestS3ReaderFindsTheBucketRegion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		location   func() (string, error)
		headRegion string
		want       string
		remembered bool
	}{
		{"location", func() (string, error) { return "eu-central-1", nil }, "", "eu-central-1", true},
		{"empty location", func() (string, error) { return "", nil }, "", "us-east-1", true},
		{"EU", func() (string, error) { return "EU", nil }, "", "eu-west-1", true},
		{"HeadBucket", func() (string, error) { return "", errors.New("AccessDenied") }, "ap-south-1", "ap-south-1", true},
		{"nothing", func() (string, error) { return "", errors.New("AccessDenied") }, "", "sa-east-1", false},
	} {
		var (
			mu      sync.Mutex
			asked   []string
			regions []string
		)
		r := &S3Reader{opts: S3Options{DefaultRegion: "sa-east-1"}, clients: map[string]readAPI{}, regions: map[string]string{}}
		r.newAPI = func(region string) readAPI {
			regions = append(regions, region)
			return fakeRead{location: tc.location, headRegion: tc.headRegion, mu: &mu, asked: &asked}
		}
		r.client(context.Background(), "outputs")
		if _, ok := r.clients[tc.want]; !ok {
			t.Errorf("%s: clients for %v, want one for %s", tc.name, regions, tc.want)
		}
		before := len(asked)
		r.client(context.Background(), "outputs")
		if again := len(asked) > before; again == tc.remembered {
			t.Errorf("%s: asked again %v, want remembered %v", tc.name, again, tc.remembered)
		}
	}
}
