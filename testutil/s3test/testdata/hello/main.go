// Command hello is the small program TestBuildCached builds in place of
// versitygw.
package main

import "fmt"

func main() { fmt.Println("hello") }
