package artifact

func runChild() bool { return false }
