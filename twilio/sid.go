package twilio

// IsMessageSID reports whether s has the shape of a Twilio message sid: SM or
// MM followed by 32 lower-case hexadecimal digits. Twilio writes its sids in
// lower case; accepting upper case too would let one message be stored twice,
// as SMab… and SMAB….
func IsMessageSID(s string) bool {
	return len(s) == 34 && (s[:2] == "SM" || s[:2] == "MM") && isLowerHex(s[2:])
}

// IsAccountSID reports whether s has the shape of a Twilio account sid: AC
// followed by 32 lower-case hexadecimal digits.
func IsAccountSID(s string) bool {
	return len(s) == 34 && s[:2] == "AC" && isLowerHex(s[2:])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isHexByte reports whether c is a hexadecimal digit of either case, as
// percent-encoding allows.
func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// IsStatus reports whether s has the shape of a message status as Twilio
// writes it (MessageStatus): 1 to 32 lower-case letters and underscores. A
// status Twilio adds later has it too.
func IsStatus(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}
