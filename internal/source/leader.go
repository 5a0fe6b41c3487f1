package source

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// leaderObjectInfo asks the leader of an object store's stream for an
// object's info.
//
// The object store's GetInfo is a direct get, which any replica of the
// stream may answer; one that lags behind its leader (right after a NATS
// fail-over) answers "not found" for an object stored moments before. The
// stream's message-get API is answered by the leader, which holds every
// acknowledged message (Raft elects a leader among the replicas that have
// them). It returns jetstream.ErrObjectNotFound only when the leader says
// so, and another error when it cannot be asked.
func leaderObjectInfo(ctx context.Context, js jetstream.JetStream, bucket, name string) (*jetstream.ObjectInfo, error) {
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{"$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))})
	if err != nil {
		return nil, err
	}
	msg, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.MSG.GET.OBJ_"+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("asking the stream leader for %s: %w", name, err)
	}
	var resp struct {
		Message *struct {
			Data []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("the stream leader's answer for %s: %w", name, err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == http.StatusNotFound:
		return nil, jetstream.ErrObjectNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("the stream leader, asked for %s: %s (%d)", name, resp.Error.Description, resp.Error.Code)
	case resp.Message == nil:
		return nil, fmt.Errorf("the stream leader's answer for %s holds no message", name)
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(resp.Message.Data, &info); err != nil {
		return nil, fmt.Errorf("the object info of %s: %w", name, err)
	}
	if info.Deleted {
		return nil, jetstream.ErrObjectNotFound
	}
	return &info, nil
}

// apiPrefix is the JetStream API prefix js sends its own requests to, so a
// raw request reaches the same JetStream: "$JS.<domain>.API." in a
// JetStream domain (a hub seen from a leaf node), a custom prefix (an
// account import), or "$JS.API.". nats.go keeps the prefix it computes
// unexported; Options carries what it was computed from.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix
		}
		return o.APIPrefix + "."
	}
	return jetstream.DefaultAPIPrefix
}
