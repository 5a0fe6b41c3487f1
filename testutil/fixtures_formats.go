package testutil

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"slices"
	"strings"
)

// recordEncoder turns findings into the bytes of one output format: a file is
// header, records joined by separator, footer.
type recordEncoder interface {
	header() []byte
	record(f *finding) []byte
	separator() []byte
	footer() []byte
}

// ---- findings CSV ----

type csvEncoder struct{}

func (csvEncoder) header() []byte    { return []byte(FindingsCSVHeader + "\r\n") }
func (csvEncoder) separator() []byte { return nil }
func (csvEncoder) footer() []byte    { return nil }

func (csvEncoder) record(f *finding) []byte {
	c := f.check
	fields := []string{
		"profile: default",
		f.time.Format("2006-01-02 15:04:05.000000"),
		f.account.UID, f.account.Name, f.account.Email, f.account.OrgUID, f.account.OrgName, f.account.Tags,
		f.uid, "aws", c.ID, c.Title, "Software and Configuration Checks/AWS Security Best Practices",
		f.status, f.statusExtended, pyBool(f.muted), c.Service, c.SubService, c.Severity, c.ResourceType,
		f.resourceUID, f.resourceName, "", f.resourceTags, "aws", f.region,
		c.Description, c.Risk, c.RelatedURL, c.RemediationText, c.RemediationURL, "", c.Terraform, c.CLI, "",
		c.complianceString(), strings.Join(c.Categories, ","), "", "", "", ProwlerVersion, "",
		f.account.OUUID, f.account.OUName,
	}
	return csvLine(fields)
}

// csvLine writes one `;`-separated CRLF-terminated line, quoting as Python's
// csv module (which Prowler uses) does for these values.
func csvLine(fields []string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Comma = ';'
	w.UseCRLF = true
	_ = w.Write(fields) // a bytes.Buffer does not fail
	w.Flush()
	return b.Bytes()
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// ---- OCSF JSON ----

type ocsfEncoder struct{}

func (ocsfEncoder) header() []byte    { return []byte("[\n") }
func (ocsfEncoder) separator() []byte { return []byte(",\n") }
func (ocsfEncoder) footer() []byte    { return []byte("\n]") }

type ocsfFinding struct {
	Message  string `json:"message"`
	Metadata struct {
		EventCode string `json:"event_code"`
		Product   struct {
			Name       string `json:"name"`
			UID        string `json:"uid"`
			VendorName string `json:"vendor_name"`
			Version    string `json:"version"`
		} `json:"product"`
		Profiles  []string `json:"profiles"`
		TenantUID string   `json:"tenant_uid"`
		Version   string   `json:"version"`
	} `json:"metadata"`
	SeverityID   int            `json:"severity_id"`
	Severity     string         `json:"severity"`
	Status       string         `json:"status"`
	StatusCode   string         `json:"status_code"`
	StatusDetail string         `json:"status_detail"`
	StatusID     int            `json:"status_id"`
	Unmapped     map[string]any `json:"unmapped"`
	ActivityName string         `json:"activity_name"`
	ActivityID   int            `json:"activity_id"`
	FindingInfo  struct {
		CreatedTime   int64    `json:"created_time"`
		CreatedTimeDT string   `json:"created_time_dt"`
		Desc          string   `json:"desc"`
		Title         string   `json:"title"`
		Types         []string `json:"types"`
		UID           string   `json:"uid"`
		Name          string   `json:"name"`
	} `json:"finding_info"`
	Resources    []ocsfResource `json:"resources"`
	CategoryName string         `json:"category_name"`
	CategoryUID  int            `json:"category_uid"`
	ClassName    string         `json:"class_name"`
	ClassUID     int            `json:"class_uid"`
	Cloud        struct {
		Account struct {
			Name   string   `json:"name"`
			Type   string   `json:"type"`
			TypeID int      `json:"type_id"`
			UID    string   `json:"uid"`
			Labels []string `json:"labels"`
		} `json:"account"`
		Org struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"org"`
		Provider string `json:"provider"`
		Region   string `json:"region"`
	} `json:"cloud"`
	Remediation struct {
		Desc       string   `json:"desc"`
		References []string `json:"references"`
	} `json:"remediation"`
	RiskDetails string `json:"risk_details"`
	Time        int64  `json:"time"`
	TimeDT      string `json:"time_dt"`
	TypeUID     int    `json:"type_uid"`
	TypeName    string `json:"type_name"`
}

type ocsfResource struct {
	CloudPartition string         `json:"cloud_partition"`
	Region         string         `json:"region"`
	Data           map[string]any `json:"data"`
	Group          map[string]any `json:"group"`
	Labels         []string       `json:"labels"`
	Name           string         `json:"name"`
	Type           string         `json:"type"`
	UID            string         `json:"uid"`
}

var ocsfSeverityID = map[string]int{"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

func (ocsfEncoder) record(f *finding) []byte {
	c := f.check
	var o ocsfFinding
	o.Message = f.statusExtended
	o.Metadata.EventCode = c.ID
	o.Metadata.Product.Name = "Prowler"
	o.Metadata.Product.UID = "prowler"
	o.Metadata.Product.VendorName = "Prowler"
	o.Metadata.Product.Version = ProwlerVersion
	o.Metadata.Profiles = []string{"cloud", "datetime"}
	o.Metadata.Version = "1.3.0"
	o.SeverityID = ocsfSeverityID[c.Severity]
	o.Severity = strings.ToUpper(c.Severity[:1]) + c.Severity[1:]
	o.Status = "New"
	if f.muted {
		o.Status = "Suppressed"
	}
	o.StatusCode = f.status
	o.StatusDetail = f.statusExtended
	o.StatusID = 1
	o.Unmapped = map[string]any{
		"related_url":     c.RelatedURL,
		"categories":      c.Categories,
		"depends_on":      []string{},
		"related_to":      []string{},
		"additional_urls": []string{},
		"notes":           "",
		"compliance":      c.Compliance,
	}
	o.ActivityName, o.ActivityID = "Create", 1
	o.FindingInfo.CreatedTime = f.time.Unix()
	o.FindingInfo.CreatedTimeDT = f.time.Format("2006-01-02T15:04:05.000000")
	o.FindingInfo.Desc = c.Description
	o.FindingInfo.Title = c.Title
	o.FindingInfo.Types = []string{"Software and Configuration Checks", "AWS Security Best Practices"}
	o.FindingInfo.UID = f.uid
	o.FindingInfo.Name = c.ID
	var labels []string
	if f.resourceTags != "" {
		labels = strings.Split(f.resourceTags, " | ")
	}
	o.Resources = []ocsfResource{{
		CloudPartition: "aws",
		Region:         f.region,
		Data:           map[string]any{"details": "", "metadata": map[string]any{"name": f.resourceName, "region": f.region}},
		Group:          map[string]any{"name": c.Service},
		Labels:         orEmpty(labels),
		Name:           f.resourceName,
		Type:           c.ResourceType,
		UID:            f.resourceUID,
	}}
	o.CategoryName, o.CategoryUID = "Findings", 2
	o.ClassName, o.ClassUID = "Detection Finding", 2004
	o.Cloud.Account.Name = f.account.Name
	o.Cloud.Account.Type = "AWS Account"
	o.Cloud.Account.TypeID = 10
	o.Cloud.Account.UID = f.account.UID
	o.Cloud.Account.Labels = strings.Split(f.account.Tags, " | ")
	o.Cloud.Org.Name = f.account.OrgName
	o.Cloud.Org.UID = f.account.OrgUID
	o.Cloud.Provider = "aws"
	o.Cloud.Region = f.region
	o.Remediation.Desc = c.RemediationText
	o.Remediation.References = orEmpty(nonEmpty(c.CLI, c.Terraform, c.RemediationURL))
	o.RiskDetails = c.Risk
	o.Time = f.time.Unix()
	o.TimeDT = o.FindingInfo.CreatedTimeDT
	o.TypeUID, o.TypeName = 200401, "Detection Finding: Create"
	return indentJSON(o)
}

// indentJSON renders v as an element of a top-level array indented by 4, as
// Python's json.dump(indent=4) does, without HTML escaping.
func indentJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "    ")
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("fixture json: %v", err)) // static types: cannot happen
	}
	return append([]byte("    "), bytes.TrimRight(b.Bytes(), "\n")...)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ---- ASFF JSON ----

type asffEncoder struct{}

func (asffEncoder) header() []byte    { return []byte("[\n") }
func (asffEncoder) separator() []byte { return []byte(",\n") }
func (asffEncoder) footer() []byte    { return []byte("\n]") }

func (asffEncoder) record(f *finding) []byte {
	c := f.check
	ts := f.time.UTC().Format("2006-01-02T15:04:05Z")
	compStatus := map[string]string{"PASS": "PASSED", "FAIL": "FAILED", "MANUAL": "WARNING"}[f.status]
	var related []string
	for _, k := range slices.Sorted(maps.Keys(c.Compliance)) {
		for _, r := range c.Compliance[k] {
			related = append(related, k+" "+r)
		}
	}
	asff := map[string]any{
		"SchemaVersion": "2018-10-08",
		"Id":            f.uid,
		"ProductArn":    fmt.Sprintf("arn:aws:securityhub:%s::product/prowler/prowler", f.region),
		"RecordState":   "ACTIVE",
		"ProductFields": map[string]string{
			"ProviderName": "Prowler", "ProviderVersion": ProwlerVersion, "ProwlerResourceName": f.resourceUID,
		},
		"GeneratorId":     "prowler-" + c.ID,
		"AwsAccountId":    f.account.UID,
		"Types":           []string{"Software and Configuration Checks/AWS Security Best Practices"},
		"FirstObservedAt": ts,
		"UpdatedAt":       ts,
		"CreatedAt":       ts,
		"Severity":        map[string]string{"Label": strings.ToUpper(c.Severity)},
		"Title":           c.Title,
		"Description":     f.statusExtended,
		"Resources": []map[string]any{{
			"Type": c.ResourceType, "Id": f.resourceUID, "Partition": "aws", "Region": f.region,
		}},
		"Compliance": map[string]any{
			"Status": compStatus, "RelatedRequirements": orEmpty(related), "AssociatedStandards": []map[string]string{},
		},
		"Remediation": map[string]any{
			"Recommendation": map[string]string{"Text": c.RemediationText, "Url": c.RemediationURL},
		},
	}
	return indentJSON(asff)
}

// ---- HTML ----

// htmlEncoder writes a self-contained report page; the summary counts are
// those of the findings it is given up front.
type htmlEncoder struct {
	account           fixtureAccount
	assessed          string
	pass, fail, muted int
}

func (e htmlEncoder) header() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1, shrink-to-fit=no">
<title>Prowler - The Handy Cloud Security Tool</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, Arial, sans-serif; font-size: 14px; margin: 0; }
.summary { display: flex; gap: 2em; padding: 1em 2em; background: #f8f9fa; }
table { border-collapse: collapse; width: 100%%; }
th, td { border: 1px solid #dee2e6; padding: .3em .5em; vertical-align: top; }
tr.fail td.status { color: #b02a37; font-weight: bold; }
tr.pass td.status { color: #146c43; }
tr.manual td.status { color: #997404; }
</style>
</head>
<body>
<div class="summary">
<div><h4>Report Information</h4><ul>
<li><b>Version:</b> %s</li>
<li><b>Parameters used:</b> prowler aws --output-formats csv html json-ocsf</li>
<li><b>Date:</b> %s</li>
</ul></div>
<div><h4>AWS Assessment Summary</h4><ul>
<li><b>AWS Account:</b> %s</li>
<li><b>AWS-CLI Profile:</b> default</li>
<li><b>Audited Regions:</b> All Regions</li>
</ul></div>
<div><h4>Assessment Overview</h4><ul>
<li><b>Total Findings:</b> %d</li>
<li><b>Passed:</b> %d</li>
<li><b>Failed:</b> %d</li>
<li><b>Muted:</b> %d</li>
</ul></div>
</div>
<table id="findingsTable">
<thead><tr><th>Status</th><th>Severity</th><th>Service Name</th><th>Region</th><th>Check ID</th><th>Check Title</th><th>Resource ID</th><th>Resource Tags</th><th>Status Extended</th><th>Risk</th><th>Recommendation</th><th>Compliance</th></tr></thead>
<tbody>
`, ProwlerVersion, html.EscapeString(e.assessed), html.EscapeString(e.account.UID),
		e.pass+e.fail, e.pass, e.fail, e.muted)
	return []byte(b.String())
}

func (htmlEncoder) separator() []byte { return nil }
func (htmlEncoder) footer() []byte {
	return []byte("</tbody>\n</table>\n<footer>Prowler is an open source project.</footer>\n</body>\n</html>\n")
}

func (htmlEncoder) record(f *finding) []byte {
	c := f.check
	e := html.EscapeString
	status := f.status
	if f.muted {
		status += " (Muted)"
	}
	return fmt.Appendf(nil, `<tr class="%s"><td class="status">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td><p class="show-read-more">%s</p></td><td><p class="show-read-more">%s</p> <a class="read-more" href="%s"><i class="fas fa-external-link-alt"></i></a></td><td><p class="show-read-more">%s</p></td></tr>`+"\n",
		strings.ToLower(f.status), e(status), e(c.Severity), e(c.Service), e(f.region), e(c.ID), e(c.Title),
		e(f.resourceUID), e(f.resourceTags), e(f.statusExtended), e(c.Risk), e(c.RemediationText), e(c.RemediationURL),
		e(c.complianceString()))
}
