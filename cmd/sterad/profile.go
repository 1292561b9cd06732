package main

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
)

// Profiles of a running daemon, for `sterad bench` and developers. They
// are switched on by the environment of the process only, never by the
// API or the configuration, and write to files the starter chose:
//
//	STERAD_CPUPROFILE=FILE  SIGUSR1 starts a CPU profile; the next SIGUSR1
//	                        (or the stop) writes it to FILE.
//	STERAD_MEMPROFILE=FILE  SIGUSR2 writes a heap profile to FILE (after a
//	                        garbage collection), replacing the last one.
//
// Without them the daemon does not catch SIGUSR1 and SIGUSR2. Each
// profile is logged ("CPU profile started", "CPU profile written", "heap
// profile written") so that the starter knows when the file is complete.
// Profiles hold function names and sample counts: no card data.
const (
	envCPUProfile = "STERAD_CPUPROFILE"
	envMemProfile = "STERAD_MEMPROFILE"
)

// startProfiling watches for the profiling signals when the environment
// asks for them, and returns what stops watching (writing a CPU profile
// under way).
func startProfiling(log *slog.Logger) (stop func()) {
	cpuPath, memPath := os.Getenv(envCPUProfile), os.Getenv(envMemProfile)
	if cpuPath == "" && memPath == "" {
		return func() {}
	}
	sigs := make(chan os.Signal, 4)
	if cpuPath != "" {
		signal.Notify(sigs, syscall.SIGUSR1)
	}
	if memPath != "" {
		signal.Notify(sigs, syscall.SIGUSR2)
	}
	var (
		mu  sync.Mutex
		cpu *os.File // the CPU profile under way
	)
	stopCPU := func() {
		if cpu == nil {
			return
		}
		pprof.StopCPUProfile()
		err := cpu.Close()
		cpu = nil
		if err != nil {
			log.Error("CPU profile", "file", cpuPath, "err", err)
			return
		}
		log.Info("CPU profile written", "file", cpuPath)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				mu.Lock()
				switch s {
				case syscall.SIGUSR1:
					if cpu != nil {
						stopCPU()
						break
					}
					f, err := os.Create(cpuPath)
					if err == nil {
						if err = pprof.StartCPUProfile(f); err != nil {
							f.Close()
						}
					}
					if err != nil {
						log.Error("CPU profile", "file", cpuPath, "err", err)
						break
					}
					cpu = f
					log.Info("CPU profile started", "file", cpuPath)
				case syscall.SIGUSR2:
					if err := writeHeapProfile(memPath); err != nil {
						log.Error("heap profile", "file", memPath, "err", err)
						break
					}
					log.Info("heap profile written", "file", memPath)
				}
				mu.Unlock()
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		<-finished
		mu.Lock()
		stopCPU()
		mu.Unlock()
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // the heap as it is now, not as of the last collection
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
