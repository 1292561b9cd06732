package main

import "github.com/spf13/cobra"

func newInitCommand(g *globalOptions) *cobra.Command   { return &cobra.Command{Use: "init", Hidden: true} }
func newDoctorCommand(g *globalOptions) *cobra.Command { return &cobra.Command{Use: "doctor", Hidden: true} }
