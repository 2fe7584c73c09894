import YardCLI

@main
struct Entrypoint {
    static func main() async {
        await YardCommand.main()
    }
}
