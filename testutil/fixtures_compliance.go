package testutil

import (
	"fmt"
	"strings"
)

// frameworkDef describes a compliance framework as Prowler's compliance CSV
// names it.
type frameworkDef struct {
	key       string // the key in a check's compliance map ("CIS-5.0")
	framework string // Framework column ("CIS")
	name      string // Name column
	sections  []string
}

var knownFrameworks = map[string]frameworkDef{
	"cis_5.0_aws": {"CIS-5.0", "CIS", "CIS Amazon Web Services Foundations Benchmark v5.0.0",
		[]string{"1 Identity and Access Management", "2.1 Simple Storage Service (S3)", "3 Logging", "5 Networking"}},
	"cis_4.0_aws": {"CIS-4.0", "CIS", "CIS Amazon Web Services Foundations Benchmark v4.0.1",
		[]string{"1 Identity and Access Management", "2 Storage", "3 Logging", "4 Monitoring", "5 Networking"}},
	"iso27001_2022_aws": {"ISO27001-2022", "ISO27001", "ISO/IEC 27001 Information Security Management Standard 2022",
		[]string{"A.5 Organizational controls", "A.8 Technological controls"}},
	"soc2_aws": {"SOC2", "SOC2", "System and Organization Controls 2 (SOC 2)",
		[]string{"CC6.0 - Logical and Physical Access", "CC7.0 - System Operations"}},
	"pci_4.0_aws": {"PCI-4.0", "PCI", "Payment Card Industry Data Security Standard (PCI DSS) v4.0",
		[]string{"1. Install and Maintain Network Security Controls", "3. Protect Stored Account Data", "7. Restrict Access"}},
	"nist_800_53_revision_5_aws": {"NIST-800-53-Revision-5", "NIST-800-53-Revision-5", "NIST Special Publication 800-53 Revision 5",
		[]string{"Access Control (AC)", "Audit and Accountability (AU)", "System and Communications Protection (SC)"}},
	"mitre_attack_aws": {"MITRE-ATTACK", "MITRE-ATTACK", "MITRE ATT&CK compliance framework",
		[]string{"Initial Access", "Lateral Movement", "Persistence"}},
	"gdpr_aws": {"GDPR", "GDPR", "General Data Protection Regulation (GDPR)",
		[]string{"Article 25 Data protection by design and by default", "Article 32 Security of processing"}},
	"hipaa_aws": {"HIPAA", "HIPAA", "Health Insurance Portability and Accountability Act (HIPAA)",
		[]string{"164.308 Administrative safeguards", "164.312 Technical safeguards"}},
	"aws_foundational_security_best_practices_aws": {"AWS-Foundational-Security-Best-Practices", "AWS-Foundational-Security-Best-Practices",
		"AWS Foundational Security Best Practices", []string{"S3", "GuardDuty", "IAM", "EC2"}},
}

// DefaultFrameworks are compliance frameworks an AWS scan reports on.
var DefaultFrameworks = []string{"cis_5.0_aws", "iso27001_2022_aws", "soc2_aws", "pci_4.0_aws", "gdpr_aws"}

// lookupFramework returns the definition of a framework file name, making a
// generic one for names it does not know ("foo_1.0_aws" -> "FOO").
func lookupFramework(name string) frameworkDef {
	if fw, ok := knownFrameworks[name]; ok {
		return fw
	}
	base := strings.TrimSuffix(name, "_aws")
	key := strings.ToUpper(strings.ReplaceAll(base, "_", "-"))
	return frameworkDef{key: key, framework: strings.ToUpper(strings.SplitN(base, "_", 2)[0]), name: name,
		sections: []string{"1 General", "2 Controls"}}
}

func isCIS(framework string) bool { return strings.HasPrefix(framework, "cis_") }

// complianceEncoder writes one framework's compliance CSV. Each record is one
// requirement evaluated against one finding's resource.
type complianceEncoder struct {
	name string
	fw   frameworkDef
}

func (e complianceEncoder) header() []byte {
	if isCIS(e.name) {
		return []byte(CISComplianceCSVHeader + "\r\n")
	}
	return []byte(ComplianceCSVHeader + "\r\n")
}
func (complianceEncoder) separator() []byte { return nil }
func (complianceEncoder) footer() []byte    { return nil }

func (e complianceEncoder) record(f *finding) []byte {
	c := f.check
	reqs := c.Compliance[e.fw.key]
	req := ""
	if len(reqs) > 0 {
		req = reqs[f.index%len(reqs)]
	} else {
		req = fmt.Sprintf("%d.%d", f.index%5+1, f.index%13+1)
	}
	section := e.fw.sections[f.index%len(e.fw.sections)]
	for _, sec := range e.fw.sections { // "2.1.4" belongs in "2.1 Simple Storage Service (S3)"
		num, _, _ := strings.Cut(sec, " ")
		if strings.HasPrefix(req, num+".") || req == num {
			section = sec
		}
	}
	date := f.time.Format("2006-01-02 15:04:05.000000")
	if isCIS(e.name) {
		profile := "Level 1"
		if f.index%4 == 0 {
			profile = "Level 2"
		}
		return csvLine([]string{
			"aws", e.fw.name, f.account.UID, f.region, date, req, c.Title, section, "", profile, "Automated",
			c.Description, c.Risk, "Enabling this control may require changes to existing workloads.",
			c.RemediationText, "Perform the following to determine if the control is configured: " + c.CLI,
			"", "By default, this control is not enabled.", c.RelatedURL,
			f.status, f.statusExtended, f.resourceUID, f.resourceName, c.ID, pyBool(f.muted), e.fw.framework, e.fw.name,
		})
	}
	return csvLine([]string{
		"aws", e.fw.name, f.account.UID, f.region, date, req, c.Title, section, "", "", c.Service, "automated",
		f.status, f.statusExtended, f.resourceUID, c.ID, pyBool(f.muted), f.resourceName, e.fw.framework, e.fw.name, "",
	})
}
